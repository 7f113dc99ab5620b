// Types of the contract's internals (contract.mjs), for the package's own tests.
import type { CacheServiceOptions } from '../index.js'
import type { ContractSubject } from './index.js'

type Service = ReturnType<typeof Object.create> & InstanceType<ContractSubject>

export interface CheckContext {
  cache: Service
  mode: 'memory' | 'redis'
  /** An ioredis client on the contract's database in 'redis' mode, else null. */
  raw: unknown
  logs: Array<[level: string, message: string]> | null
  key(name: string): string
  create(options?: CacheServiceOptions): Service
  baseKeys(): Promise<number>
  beforeClear(): Promise<void>
}

export interface Check {
  name: string
  only?: 'memory' | 'redis'
  clears?: boolean
  /** Set by `Harness.checks()`: clear() on a database the contract does not own. */
  skipped: boolean
  run(ctx: CheckContext): Promise<void>
}

export declare const checks: Check[]

export declare function memoryOptions(options?: CacheServiceOptions): CacheServiceOptions

export declare class Harness {
  constructor(Service: ContractSubject, options?: { redisUrl?: string; allowNonEmptyDatabase?: boolean; options?: CacheServiceOptions })
  readonly mode: 'memory' | 'redis'
  readonly title: string
  checks(): Check[]
  open(): Promise<void>
  close(): void
  start(): void
  finish(): Promise<void>
  context(): CheckContext
}
