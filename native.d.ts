// native.js exports the addon binding.js describes: it only chooses which binary to load.
export * from './binding.js'
