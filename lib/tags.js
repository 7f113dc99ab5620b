'use strict'

// Checks of tags (`set(…, { tags })`, getOrSet's and getOrSetMany's `tags`,
// `invalidateTags`): each a non-empty string, at most MAX_TAGS_PER_KEY on one key.
const { MAX_TAGS_PER_KEY } = require('../native.js')
const { describe } = require('./errors.js')

/** `tags` checked as a list of non-empty strings, duplicates dropped; `name` names the argument in errors. */
function toTagList(tags, name) {
  if (!Array.isArray(tags)) throw new TypeError(`${name} must be an array of non-empty strings, got ${describe(tags)}`)
  for (let i = 0; i < tags.length; i++) {
    const t = tags[i]
    if (typeof t !== 'string' || t.length === 0) throw new TypeError(`${name}[${i}] must be a non-empty string, got ${describe(t)}`)
  }
  return tags.length < 2 ? tags.slice() : [...new Set(tags)]
}

/** One key's tags (undefined: none), at most MAX_TAGS_PER_KEY of them. */
function toTags(tags, name) {
  if (tags === undefined) return undefined
  const list = toTagList(tags, name)
  if (list.length > MAX_TAGS_PER_KEY) throw new TypeError(`${name}: at most ${MAX_TAGS_PER_KEY} tags on one key, got ${list.length}`)
  return list.length === 0 ? undefined : list
}

/** `set`'s fourth argument: undefined, or `{ tags }`; answers the tags (undefined: none). */
function setTags(options) {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`set options must be an object like { tags }, got ${describe(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (name !== 'tags') throw new TypeError(`set options: unknown option ${JSON.stringify(name)}`)
  }
  return toTags(options.tags, 'tags')
}

module.exports = { toTags, toTagList, setTags }
