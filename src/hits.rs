//! The synchronous hit path, as free functions over a process-wide handle table.
//!
//! Measured here: a `#[napi]` class method with a string argument costs about
//! 550 ns of crossing (napi-rs borrow tracking and class unwrap), a free
//! function about 250 ns. A hit is paid on every cached read, so the hit path
//! takes a numeric handle instead of `this`.

// napi-derive registers these for Node; a `cargo test` build sees no caller.
#![cfg_attr(test, allow(dead_code))]

use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::*;
use napi::JsString;
use napi_derive::napi;

use crate::gate::Gate;
use crate::stats::Counters;
use crate::store::{Entry, Store};

/// What a hit needs: the store, whether it may serve (L1 only while tracked), the counters.
pub struct Lookup {
    pub store: Store,
    pub serving: Arc<Gate>,
    pub counters: Arc<Counters>,
}

static TABLE: RwLock<Vec<Option<Arc<Lookup>>>> = RwLock::new(Vec::new());

/// Registers an instance's lookup state; the handle stays valid until [`unregister`].
pub fn register(lookup: Lookup) -> u32 {
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    table.push(Some(Arc::new(lookup)));
    (table.len() - 1) as u32
}

pub fn unregister(handle: u32) {
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    if let Some(slot) = table.get_mut(handle as usize) {
        *slot = None;
    }
}

fn lookup(handle: u32, key: &str) -> Option<Arc<Entry>> {
    let table = TABLE.read().unwrap_or_else(|e| e.into_inner());
    let l = table.get(handle as usize)?.as_ref()?;
    let hit = if l.serving.open() {
        l.store.get(key)
    } else {
        None
    };
    let counter = if hit.is_some() {
        &l.counters.local_hits
    } else {
        &l.counters.local_misses
    };
    Counters::add(counter, 1);
    hit
}

/// ASCII text (what `JSON.stringify` of ASCII data gives) crosses as Latin-1: a plain copy, no UTF-8 decoding.
fn to_js<'env>(env: &'env Env, entry: &Entry) -> Result<JsString<'env>> {
    if entry.ascii {
        env.create_string_latin1(entry.json.as_bytes())
    } else {
        env.create_string(&*entry.json)
    }
}

/// The JSON text cached for `key` in this process, or `null`.
#[napi(ts_return_type = "string | null")]
pub fn local_get<'env>(env: &'env Env, handle: u32, key: String) -> Result<Option<JsString<'env>>> {
    lookup(handle, &key).map(|e| to_js(env, &e)).transpose()
}

/// `localGet` for many keys; `null` where this process has nothing.
#[napi(ts_return_type = "Array<string | null>")]
pub fn local_mget<'env>(
    env: &'env Env,
    handle: u32,
    keys: Vec<String>,
) -> Result<Vec<Option<JsString<'env>>>> {
    keys.iter()
        .map(|k| lookup(handle, k).map(|e| to_js(env, &e)).transpose())
        .collect()
}
