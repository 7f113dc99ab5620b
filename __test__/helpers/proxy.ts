// A TCP proxy on a free loopback port in front of a server, for network faults
// that close nothing: `silence()` stops forwarding in both directions while
// every socket stays open (no FIN, no RST), as when packets just stop arriving.
import { createServer, connect, type Server, type Socket } from 'node:net'

export type SilenceMode = 'hold' | 'drop'

export interface TcpProxy {
  port: number
  /** Connections accepted so far (a reconnecting client shows up here). */
  readonly accepted: number
  /** Connections currently open on both sides. */
  readonly open: number
  readonly silent: boolean
  /**
   * Stops forwarding in both directions without closing any socket.
   * 'hold' (default): data is kept and delivered on `heal()`, as TCP would
   * deliver it once the network is back; 'drop': data is discarded.
   * Connections accepted while silent are opened upstream but carry nothing.
   */
  silence(mode?: SilenceMode): void
  /** Forwards again; held data goes first, in order. */
  heal(): void
  /**
   * From now on holds what the server sends to the client for `ms` before
   * forwarding it (order kept); 0 forwards at once again.
   */
  delayToClient(ms: number): void
  /** Closes every connection and the listener. */
  close(): Promise<void>
}

interface Pair {
  client: Socket
  upstream: Socket
  /** Held data, per direction, while silent in 'hold' mode. */
  toUpstream: Buffer[]
  toClient: Buffer[]
  dead: boolean
}

export function startProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>()
  let silentMode: SilenceMode | null = null
  let accepted = 0
  let toClientDelay = 0

  const kill = (p: Pair) => {
    if (p.dead) return
    p.dead = true
    pairs.delete(p)
    p.toUpstream = []
    p.toClient = []
    // A side that closes while the link is silent takes the other down without
    // delivering what was held: nothing crosses a silent link, not even a FIN.
    p.client.destroy()
    p.upstream.destroy()
  }

  const server: Server = createServer((client) => {
    accepted += 1
    const upstream = connect(targetPort, targetHost)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const p: Pair = { client, upstream, toUpstream: [], toClient: [], dead: false }
    pairs.add(p)
    const forward = (data: Buffer, to: Socket, held: Buffer[]) => {
      if (p.dead) return
      if (silentMode === 'drop') return
      if (silentMode === 'hold') held.push(data)
      else to.write(data)
    }
    // Delayed server-to-client data, in order: one timer drains a queue whose due times never go back.
    const queue: { due: number; data: Buffer }[] = []
    let timer: NodeJS.Timeout | null = null
    const drain = () => {
      timer = null
      while (queue.length > 0 && queue[0].due <= Date.now()) forward(queue.shift()!.data, client, p.toClient)
      if (queue.length > 0) timer = setTimeout(drain, queue[0].due - Date.now())
    }
    const delayed = (data: Buffer) => {
      if (toClientDelay <= 0 && queue.length === 0) return forward(data, client, p.toClient)
      const due = Math.max(queue.at(-1)?.due ?? 0, Date.now() + toClientDelay)
      queue.push({ due, data })
      timer ??= setTimeout(drain, due - Date.now())
    }
    client.on('data', (d: Buffer) => forward(d, upstream, p.toUpstream))
    upstream.on('data', (d: Buffer) => delayed(d))
    for (const s of [client, upstream]) {
      s.on('error', () => kill(p))
      s.on('close', () => kill(p))
    }
  })

  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      resolve({
        port,
        get accepted() {
          return accepted
        },
        get open() {
          return pairs.size
        },
        get silent() {
          return silentMode !== null
        },
        silence(mode: SilenceMode = 'hold') {
          silentMode = mode
        },
        heal() {
          silentMode = null
          for (const p of [...pairs]) {
            if (p.dead) continue
            for (const d of p.toUpstream.splice(0)) p.upstream.write(d)
            for (const d of p.toClient.splice(0)) p.client.write(d)
          }
        },
        delayToClient(ms: number) {
          toClientDelay = ms
        },
        close() {
          silentMode = null
          for (const p of [...pairs]) kill(p)
          return new Promise<void>((r) => server.close(() => r()))
        },
      })
    })
  })
}
