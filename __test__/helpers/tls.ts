// Certificates for TLS tests, made with `openssl` at test time in a temp dir
// (removed by `cleanup()`), and TLS-only redis-servers that use them.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis, type RedisProcess } from './redis'

/** A certificate and its key: file paths (for redis-server) and PEM text (for clients). */
export interface CertPair {
  certFile: string
  keyFile: string
  cert: string
  key: string
}

export interface TestPki {
  dir: string
  /** The CA that signed every certificate below. */
  caFile: string
  ca: string
  /** Server certificate, SAN `DNS:localhost, IP:127.0.0.1`. */
  server: CertPair
  /** Server certificate whose only SAN is `DNS:redis.test`. */
  named: CertPair
  /** Client certificate (clientAuth), signed by the CA. */
  client: CertPair
  /** An unrelated CA: it signed nothing the servers present. */
  otherCaFile: string
  otherCa: string
  cleanup(): void
}

function openssl(dir: string, args: string[]) {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? ''
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || String(err)}`)
  }
}

// P-256 keys: fast to make, accepted by OpenSSL (redis-server), rustls and Node.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

function makeCa(dir: string, name: string, cn: string) {
  openssl(dir, [
    'req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ])
}

function makeLeaf(dir: string, name: string, cn: string, ext: string): CertPair {
  writeFileSync(join(dir, `${name}.ext`), ext)
  openssl(dir, ['req', '-new', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`])
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-sha256', '-extfile', `${name}.ext`,
  ])
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
}

const leafExt = (san: string, usage: string) =>
  [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${usage}`,
    `subjectAltName=${san}`,
    '',
  ].join('\n')

/** A CA, server and client certificates signed by it, and an unrelated CA. */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'native-cache-tls-'))
  try {
    makeCa(dir, 'ca', 'native-cache test CA')
    makeCa(dir, 'other-ca', 'unrelated test CA')
    const server = makeLeaf(dir, 'server', 'localhost', leafExt('DNS:localhost,IP:127.0.0.1', 'serverAuth'))
    const named = makeLeaf(dir, 'named', 'redis.test', leafExt('DNS:redis.test', 'serverAuth'))
    const client = makeLeaf(dir, 'client', 'native-cache test client', leafExt('DNS:client.test', 'clientAuth'))
    const caFile = join(dir, 'ca.crt')
    const otherCaFile = join(dir, 'other-ca.crt')
    return {
      dir,
      caFile,
      ca: readFileSync(caFile, 'utf8'),
      server,
      named,
      client,
      otherCaFile,
      otherCa: readFileSync(otherCaFile, 'utf8'),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/**
 * A redis-server serving TLS only (`--port 0`) with `pair` as its certificate;
 * `authClients`: require a client certificate signed by the CA (mutual TLS).
 */
export function startTlsRedis(
  pki: TestPki,
  { pair = pki.server, authClients = false, extraArgs = [] as string[] } = {},
): Promise<RedisProcess> {
  return startRedis(
    [
      '--tls-cert-file', pair.certFile,
      '--tls-key-file', pair.keyFile,
      '--tls-ca-cert-file', pki.caFile,
      '--tls-auth-clients', authClients ? 'yes' : 'no',
      ...extraArgs,
    ],
    undefined,
    { tlsOnly: true },
  )
}
