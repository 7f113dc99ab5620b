//! The synchronous hit path, as free functions over a process-wide handle table.
//!
//! Measured here: a `#[napi]` class method with a string argument costs about
//! 550 ns of crossing (napi-rs borrow tracking and class unwrap), a free
//! function about 250 ns. A hit is paid on every cached read, so the hit path
//! takes a numeric handle instead of `this`.

// napi-derive registers these for Node; a `cargo test` build sees no caller.
#![cfg_attr(test, allow(dead_code))]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::gate::Gate;
use crate::ops::Op;
use crate::queue::Queue;
use crate::stats::Counters;
use crate::store::{Entry, Store};

/// What a hit needs: the store, whether it may serve (L1 only while tracked),
/// the counters; and where a read that finds no copy is queued for Redis.
pub struct Lookup {
    pub store: Store,
    pub serving: Arc<Gate>,
    pub counters: Arc<Counters>,
    pub queue: Arc<Queue>,
}

/// A slab: freed slots are reused, and each reuse bumps the slot's generation,
/// which is part of the handle, so a stale handle never reaches a newer instance.
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    generation: u32,
    lookup: Option<Arc<Lookup>>,
}

/// A handle is a slot index in its low 20 bits and the slot's generation above them.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// A slot whose generation reaches this is retired rather than wrap to an old handle.
const MAX_GENERATION: u32 = u32::MAX >> INDEX_BITS;

static TABLE: RwLock<Table> = RwLock::new(Table {
    slots: Vec::new(),
    free: Vec::new(),
});

/// Bumped by every [`unregister`]: a thread's remembered handle is used only
/// while this has not moved since (see [`LAST`]).
static UNREGISTERS: AtomicU64 = AtomicU64::new(0);

/// The last handle this thread looked up, with [`UNREGISTERS`] as it was then:
/// a hit on the same instance skips the table's lock (two atomic
/// read-modify-writes) for one plain atomic load.
struct Last {
    handle: u32,
    unregisters: u64,
    lookup: Arc<Lookup>,
}

thread_local! {
    static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
}

fn handle(index: usize, generation: u32) -> u32 {
    (generation << INDEX_BITS) | index as u32
}

/// Registers an instance's lookup state; the handle stays valid until [`unregister`].
pub fn register(lookup: Lookup) -> u32 {
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    let lookup = Some(Arc::new(lookup));
    if let Some(index) = table.free.pop() {
        let slot = &mut table.slots[index as usize];
        slot.lookup = lookup;
        return handle(index as usize, slot.generation);
    }
    if table.slots.len() <= INDEX_MASK as usize {
        table.slots.push(Slot {
            generation: 0,
            lookup,
        });
        return handle(table.slots.len() - 1, 0);
    }
    // Every slot live or retired: about 2^32 registrations in one process. Reopen
    // the retired ones, accepting that a handle that old could then resolve again.
    let table = &mut *table;
    for (index, slot) in table.slots.iter_mut().enumerate() {
        if slot.lookup.is_none() {
            slot.generation = 0;
            table.free.push(index as u32);
        }
    }
    match table.free.pop() {
        Some(index) => {
            table.slots[index as usize].lookup = lookup;
            handle(index as usize, 0)
        }
        // 2^20 instances alive at once: share the last slot's handle space rather than panic.
        None => {
            let index = INDEX_MASK as usize;
            let slot = &mut table.slots[index];
            slot.lookup = lookup;
            handle(index, slot.generation)
        }
    }
}

/// Frees `handle`'s slot; a stale or unknown handle (a second unregister) changes nothing.
pub fn unregister(handle: u32) {
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    let index = handle & INDEX_MASK;
    let Some(slot) = table.slots.get_mut(index as usize) else {
        return;
    };
    if slot.generation != handle >> INDEX_BITS || slot.lookup.is_none() {
        return;
    }
    UNREGISTERS.fetch_add(1, Ordering::AcqRel);
    slot.lookup = None;
    slot.generation += 1;
    if slot.generation < MAX_GENERATION {
        table.free.push(index);
    }
}

/// The live registration behind `handle`, if any.
fn resolve(table: &Table, handle: u32) -> Option<&Arc<Lookup>> {
    let slot = table.slots.get((handle & INDEX_MASK) as usize)?;
    if slot.generation != handle >> INDEX_BITS {
        return None;
    }
    slot.lookup.as_ref()
}

/// Runs `f` with the live registration behind `handle`, if any: this thread's
/// last one when no handle was freed since, else from the table (remembered).
fn with_lookup<T>(handle: u32, f: impl FnOnce(&Lookup) -> T) -> Option<T> {
    // Read before the table: an unregister after this load is seen next time.
    let unregisters = UNREGISTERS.load(Ordering::Acquire);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(l) = last
            .as_ref()
            .filter(|l| l.handle == handle && l.unregisters == unregisters)
        {
            return Some(f(&l.lookup));
        }
        let table = TABLE.read().unwrap_or_else(|e| e.into_inner());
        let Some(lookup) = resolve(&table, handle).cloned() else {
            *last = None;
            return None;
        };
        drop(table);
        let out = f(&lookup);
        *last = Some(Last {
            handle,
            unregisters,
            lookup,
        });
        Some(out)
    })
}

fn lookup(handle: u32, key: &str) -> Option<Arc<Entry>> {
    with_lookup(handle, |l| hit(l, key)).flatten()
}

/// The copy for `key`, or `None` with a `get` of it queued for Redis (the
/// caller then waits for the batch): a cold read in one crossing instead of
/// two. `Err` for a handle no longer registered.
fn lookup_or_queue(handle: u32, key: &str) -> std::result::Result<Option<Arc<Entry>>, ()> {
    with_lookup(handle, |l| {
        let found = hit(l, key);
        if found.is_none() && l.queue.is_redis() {
            l.queue.push(Op::Get(key.to_owned()));
        }
        found
    })
    .ok_or(())
}

fn hit(l: &Lookup, key: &str) -> Option<Arc<Entry>> {
    // One clock read for the lease and the entry's deadline.
    let now = Instant::now();
    let board = l.store.board();
    board.note_lookup(key);
    let hit = if l.serving.open_at(now) {
        l.store.get_at(key, now)
    } else {
        None
    };
    if let Some(e) = &hit {
        board.note_deadline(e.deadline);
    }
    let counter = if hit.is_some() {
        &l.counters.local_hits
    } else {
        &l.counters.local_misses
    };
    Counters::add(counter, 1);
    hit
}

/// Milliseconds on the clock of the lease and the entries' deadlines, for the
/// JavaScript memo to relate `performance.now()` to (both monotonic).
#[napi]
pub fn clock_ms() -> f64 {
    crate::board::ms(Instant::now())
}

/// The instance's [`crate::board::Board`] as an `ArrayBuffer` over the same
/// memory, or `null` (no such instance, or a runtime that copies external
/// buffers, where the memo must stay off: a copy would never change).
#[napi(ts_return_type = "ArrayBuffer | null")]
pub fn local_board<'env>(env: &'env Env, handle: u32) -> Result<Unknown<'env>> {
    use napi::sys;
    unsafe extern "C" fn release(
        _env: sys::napi_env,
        _data: *mut std::ffi::c_void,
        hint: *mut std::ffi::c_void,
    ) {
        // SAFETY: `hint` is the Box made below, released once by Node.
        drop(unsafe { Box::from_raw(hint.cast::<Arc<crate::board::Board>>()) });
    }
    let mut out = std::ptr::null_mut();
    // SAFETY: plain Node-API calls on the calling env; the buffer's memory is
    // the board, kept alive by the Arc the finalizer releases.
    unsafe {
        let Some(board) = with_lookup(handle, |l| l.store.board().clone()) else {
            sys::napi_get_null(env.raw(), &mut out);
            return Ok(Unknown::from_raw_unchecked(env.raw(), out));
        };
        let data = board.as_ptr() as *mut std::ffi::c_void;
        let hint = Box::into_raw(Box::new(board));
        let status = sys::napi_create_external_arraybuffer(
            env.raw(),
            data,
            crate::board::Board::LEN,
            Some(release),
            hint.cast(),
            &mut out,
        );
        if status != sys::Status::napi_ok {
            drop(Box::from_raw(hint));
            sys::napi_get_null(env.raw(), &mut out);
        }
        Ok(Unknown::from_raw_unchecked(env.raw(), out))
    }
}

/// Runs `f` with the UTF-8 text of the JavaScript string `v` (None: not a
/// string). Short keys are read into a stack buffer: no allocation.
unsafe fn with_key<T>(
    env: napi::sys::napi_env,
    v: napi::sys::napi_value,
    f: impl FnOnce(&str) -> T,
) -> Option<T> {
    use napi::sys;
    let mut stack = [0u8; 256];
    let mut len = 0usize;
    if sys::napi_get_value_string_utf8(env, v, stack.as_mut_ptr().cast(), stack.len(), &mut len)
        != sys::Status::napi_ok
    {
        return None;
    }
    // Node-API stops before a character that does not fit (up to 4 bytes), so
    // a key is whole only if 4 more bytes and the terminator would have fit
    // (`__test__/local.test.ts`, keys around the 256-byte buffer).
    if len + 4 < stack.len() {
        return std::str::from_utf8(&stack[..len]).ok().map(f);
    }
    sys::napi_get_value_string_utf8(env, v, std::ptr::null_mut(), 0, &mut len);
    let mut heap = vec![0u8; len + 1];
    sys::napi_get_value_string_utf8(env, v, heap.as_mut_ptr().cast(), heap.len(), &mut len);
    heap.truncate(len);
    std::str::from_utf8(&heap).ok().map(f)
}

/// `entry`'s JSON text as a JavaScript string, or `null`.
unsafe fn entry_to_js(
    env: napi::sys::napi_env,
    entry: Option<Arc<Entry>>,
) -> Option<napi::sys::napi_value> {
    use napi::sys;
    let mut out = std::ptr::null_mut();
    let status = match entry {
        None => sys::napi_get_null(env, &mut out),
        Some(e) if e.ascii => sys::napi_create_string_latin1(
            env,
            e.json.as_ptr().cast(),
            e.json.len() as isize,
            &mut out,
        ),
        Some(e) => sys::napi_create_string_utf8(
            env,
            e.json.as_ptr().cast(),
            e.json.len() as isize,
            &mut out,
        ),
    };
    (status == sys::Status::napi_ok).then_some(out)
}

/// The two arguments and the handle of a raw hit-path call; throws a TypeError and gives None if bad.
unsafe fn raw_args(
    env: napi::sys::napi_env,
    info: napi::sys::napi_callback_info,
    usage: &std::ffi::CStr,
) -> Option<(u32, napi::sys::napi_value)> {
    use napi::sys;
    let mut argc = 2usize;
    let mut argv = [std::ptr::null_mut(); 2];
    let mut handle = 0u32;
    let ok = sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    ) == sys::Status::napi_ok
        && argc >= 2
        && sys::napi_get_value_uint32(env, argv[0], &mut handle) == sys::Status::napi_ok;
    if !ok {
        sys::napi_throw_type_error(env, std::ptr::null_mut(), usage.as_ptr());
        return None;
    }
    Some((handle, argv[1]))
}

/// One key's text as a raw Node-API call: `usage` is the TypeError for bad
/// arguments, `unmade` the Error when the string cannot be created; `find`
/// gives the entry (`None`: no copy) or the message of an Error to throw.
unsafe fn raw_text(
    env: napi::sys::napi_env,
    info: napi::sys::napi_callback_info,
    usage: &std::ffi::CStr,
    unmade: &std::ffi::CStr,
    find: impl FnOnce(u32, &str) -> std::result::Result<Option<Arc<Entry>>, &'static std::ffi::CStr>,
) -> napi::sys::napi_value {
    use napi::sys;
    use std::ptr::null_mut;
    let Some((handle, key)) = raw_args(env, info, usage) else {
        return null_mut();
    };
    let found = match with_key(env, key, |k| find(handle, k)) {
        Some(Ok(found)) => found,
        Some(Err(why)) => {
            sys::napi_throw_error(env, null_mut(), why.as_ptr());
            return null_mut();
        }
        None => {
            sys::napi_throw_type_error(env, null_mut(), usage.as_ptr());
            return null_mut();
        }
    };
    entry_to_js(env, found).unwrap_or_else(|| {
        sys::napi_throw_error(env, null_mut(), unmade.as_ptr());
        null_mut()
    })
}

/// `localGet(handle, key)`: the JSON text cached for `key` in this process,
/// or `null`; with `QUEUE`, `localGetOrQueue(handle, key)`: the same, except
/// that when there is no copy (`null`) a Redis `get` of `key` has been
/// queued, as `queueGet` would ('redis' mode only).
///
/// Raw Node-API callbacks, not `#[napi]` functions: napi-rs' argument
/// machinery (borrow scopes, callback info, an owned `String` for the key)
/// cost about 1,700 of the 4,000 instructions of a hit (callgrind).
unsafe extern "C" fn raw_local_get<const QUEUE: bool>(
    env: napi::sys::napi_env,
    info: napi::sys::napi_callback_info,
) -> napi::sys::napi_value {
    let (usage, unmade) = if QUEUE {
        (
            c"localGetOrQueue(handle, key): a number and a string",
            c"localGetOrQueue: could not create the result",
        )
    } else {
        (
            c"localGet(handle, key): a number and a string",
            c"localGet: could not create the result",
        )
    };
    raw_text(env, info, usage, unmade, |handle, k| {
        if QUEUE {
            lookup_or_queue(handle, k).map_err(|()| c"localGetOrQueue: the cache is gone")
        } else {
            Ok(lookup(handle, k))
        }
    })
}

/// `localMget(handle, keys)`: `localGet` for many keys, `null` where this
/// process has nothing (raw, as [`raw_local_get`]).
unsafe extern "C" fn raw_local_mget(
    env: napi::sys::napi_env,
    info: napi::sys::napi_callback_info,
) -> napi::sys::napi_value {
    use napi::sys;
    use std::ptr::null_mut;
    let usage = c"localMget(handle, keys): a number and an array of strings";
    let Some((handle, keys)) = raw_args(env, info, usage) else {
        return null_mut();
    };
    let mut n = 0u32;
    let mut out = null_mut();
    if sys::napi_get_array_length(env, keys, &mut n) != sys::Status::napi_ok
        || sys::napi_create_array_with_length(env, n as usize, &mut out) != sys::Status::napi_ok
    {
        sys::napi_throw_type_error(env, null_mut(), usage.as_ptr());
        return null_mut();
    }
    for i in 0..n {
        let mut key = null_mut();
        let value = (sys::napi_get_element(env, keys, i, &mut key) == sys::Status::napi_ok)
            .then(|| with_key(env, key, |k| lookup(handle, k)))
            .flatten();
        let Some(entry) = value else {
            sys::napi_throw_type_error(env, null_mut(), usage.as_ptr());
            return null_mut();
        };
        let Some(v) = entry_to_js(env, entry) else {
            sys::napi_throw_error(
                env,
                null_mut(),
                c"localMget: could not create the result".as_ptr(),
            );
            return null_mut();
        };
        sys::napi_set_element(env, out, i, v);
    }
    out
}

/// Exports [`raw_local_get`] (twice) and [`raw_local_mget`] (runs after the `#[napi]` exports are registered).
#[napi(module_exports)]
pub fn install_raw_hit_path(exports: Object, env: Env) -> Result<()> {
    use napi::sys;
    type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let raw: [(&std::ffi::CStr, Callback); 3] = [
        (c"localGet", raw_local_get::<false>),
        (c"localGetOrQueue", raw_local_get::<true>),
        (c"localMget", raw_local_mget),
    ];
    for (name, cb) in raw {
        let mut f = std::ptr::null_mut();
        // SAFETY: plain Node-API calls on the module's own env and exports object.
        unsafe {
            let status = sys::napi_create_function(
                env.raw(),
                name.as_ptr(),
                name.to_bytes().len() as isize,
                Some(cb),
                std::ptr::null_mut(),
                &mut f,
            );
            if status != sys::Status::napi_ok
                || sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), f)
                    != sys::Status::napi_ok
            {
                return Err(Error::from_reason(format!(
                    "could not export {}",
                    name.to_string_lossy()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The table is process-wide: its tests take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn lookup_with(json: &str) -> Lookup {
        let counters = Arc::new(Counters::default());
        let store = Store::new(1 << 20, counters.clone());
        store.insert(
            "k",
            Arc::from(json),
            Instant::now() + Duration::from_secs(60),
        );
        Lookup {
            store,
            serving: Arc::new(Gate::open_always(None)),
            queue: Arc::new(Queue::new(
                None,
                crate::local::Group::new(),
                counters.clone(),
            )),
            counters,
        }
    }

    fn value(handle: u32) -> Option<String> {
        lookup(handle, "k").map(|e| e.json.to_string())
    }

    #[test]
    fn freed_slots_are_reused() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let before = TABLE.read().unwrap().slots.len();
        for _ in 0..10_000 {
            let h = register(lookup_with("1"));
            unregister(h);
        }
        let after = TABLE.read().unwrap().slots.len();
        // Other tests register concurrently; without reuse this would add 10,000.
        assert!(
            after <= before + 16,
            "the table grew from {before} to {after} slots"
        );
    }

    #[test]
    fn a_stale_handle_never_reaches_a_newer_instance() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let old = register(lookup_with("\"old\""));
        assert_eq!(value(old).as_deref(), Some("\"old\""));
        unregister(old);
        // The freed slot is the next one handed out (unless a concurrent test took it).
        let new = register(lookup_with("\"new\""));
        assert_eq!(value(old), None, "the old handle reached the new instance");
        unregister(old); // close() then drop: the second unregister must not free the new one
        assert_eq!(value(new).as_deref(), Some("\"new\""));
        unregister(new);
        assert_eq!(value(new), None);
        assert_eq!(value(u32::MAX), None);
    }

    #[test]
    fn a_worn_out_slot_is_retired_not_wrapped() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let first = register(lookup_with("1"));
        let index = first & INDEX_MASK;
        TABLE.write().unwrap().slots[index as usize].generation = MAX_GENERATION - 1;
        let worn = handle(index as usize, MAX_GENERATION - 1);
        unregister(worn);
        let next = register(lookup_with("2"));
        assert_ne!(
            next & INDEX_MASK,
            index,
            "a slot at its last generation was reused"
        );
        unregister(next);
    }
}
