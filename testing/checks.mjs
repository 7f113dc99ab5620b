// The behaviour of the original CacheService's twelve methods (SPEC.md's
// method table and "Inputs") as checks, each a name and a `run(ctx)` against
// any instance (ctx: see Harness#context in contract.mjs). Plain data, so the
// package's own tests can run them against deliberately broken services.
import values from './checks/values.mjs'
import keysAndServer from './checks/keys-and-server.mjs'

export const checks = [...values, ...keysAndServer]
