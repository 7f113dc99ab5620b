// For TypeScript's NodeNext resolution of `./index.mjs`; the types are index.d.ts (which node10 resolution also finds).
export * from './index.js'
