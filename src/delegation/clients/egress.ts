/**
 * Outbound connections to hosts an untrusted party named: the URL of a Client ID Metadata Document
 * (and, for whoever fetches it, a client's `jwks_uri`). Defends against server-side request forgery
 * as the MCP security best practices and RFC 9728 §7.7 describe: private, loopback, link-local and
 * unique-local addresses are refused unless explicitly allowed (tests, labs), and addresses that are
 * never a valid destination (unspecified, multicast, documentation, reserved) are always refused.
 *
 * The check happens inside the connection's DNS lookup, so the socket connects to exactly the
 * addresses that were checked: a name that resolves to a public address when checked and to an
 * internal one a moment later (DNS rebinding) cannot slip through. Every address a name resolves to
 * must pass, not just the first. Classification uses node:net's BlockList rather than hand-written
 * parsing, so IPv4-mapped IPv6 (`::ffff:10.0.0.1`) and odd spellings are handled.
 *
 * @example
 *   const agent = guardedAgent({ allowPrivateAddresses: false });
 *   await request('https://client.example/cimd.json', { dispatcher: agent }); // refused if it resolves to 10.0.0.8
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { isLoopbackHost } from '../../config/address.ts';
import { MandateError } from '../../errors.ts';

export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'reserved';

/** Resolves a host name to all its addresses (default: the system resolver, dns.lookup with all). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

function blocks(subnets: Array<[string, number]>): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of subnets) list.addSubnet(net, prefix, isIP(net) === 6 ? 'ipv6' : 'ipv4');
  return list;
}

const LOOPBACK = blocks([['127.0.0.0', 8], ['::1', 128]]);
const LINK_LOCAL = blocks([['169.254.0.0', 16], ['fe80::', 10]]);
const PRIVATE = blocks([
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['100.64.0.0', 10], // shared address space (carrier-grade NAT), RFC 6598
  ['fc00::', 7], // unique local
  ['fec0::', 10], // deprecated site-local
  ['64:ff9b:1::', 48], // local-use NAT64, RFC 8215
]);
const RESERVED = blocks([
  ['0.0.0.0', 8],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4], // includes 255.255.255.255
  ['::', 96], // unspecified and IPv4-compatible
  ['100::', 64],
  ['2001::', 32], // Teredo
  ['2001:db8::', 32],
  ['2002::', 16], // 6to4
  ['ff00::', 8],
]);
/** The well-known NAT64 prefix (RFC 6052): classified by the IPv4 address embedded in it. */
const NAT64 = blocks([['64:ff9b::', 96]]);

function embeddedIPv4(address: string): string {
  const groups = new URL(`http://[${address}]/`).hostname.slice(1, -1).split(':');
  const hi = parseInt(groups.at(-2) || '0', 16);
  const lo = parseInt(groups.at(-1) || '0', 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** What kind of destination an IP address is; anything that is not an IP address is 'reserved'. */
export function classifyAddress(address: string): AddressClass {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (bare.includes('%')) return 'link-local'; // scoped (zone) addresses only make sense on a local link
  const version = isIP(bare);
  if (version === 0) return 'reserved';
  const family = version === 6 ? 'ipv6' : 'ipv4';
  if (LOOPBACK.check(bare, family)) return 'loopback';
  if (LINK_LOCAL.check(bare, family)) return 'link-local';
  if (PRIVATE.check(bare, family)) return 'private';
  if (RESERVED.check(bare, family)) return 'reserved';
  if (family === 'ipv6' && NAT64.check(bare, 'ipv6')) return classifyAddress(embeddedIPv4(bare));
  return 'public';
}

/** Why a connection to `address` is refused, or undefined when it is allowed. */
export function addressRefusal(address: string, allowPrivateAddresses: boolean): string | undefined {
  const kind = classifyAddress(address);
  if (kind === 'public') return undefined;
  if (kind === 'reserved') return 'a reserved or non-unicast address';
  if (allowPrivateAddresses) return undefined;
  return `a ${kind} address (not allowed unless allow_private_addresses is on)`;
}

export interface EgressPolicy {
  allowPrivateAddresses: boolean;
  /** Replaces the system resolver (e.g. to map a test host name); default dns.lookup with all addresses. */
  resolve?: Resolver;
}

const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' });

function refused(message: string): MandateError {
  return new MandateError('ERR_FORBIDDEN', message);
}

function bare(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

/** Resolves `host` (an IP literal stands for itself) and returns its addresses if every one passes. */
async function checkedAddresses(host: string, policy: EgressPolicy): Promise<LookupAddress[]> {
  const version = isIP(host);
  const addresses = version !== 0 ? [{ address: host, family: version }] : await (policy.resolve ?? systemResolver)(host);
  if (addresses.length === 0) throw refused(`${host} has no address`);
  for (const { address } of addresses) {
    const why = addressRefusal(address, policy.allowPrivateAddresses);
    if (why !== undefined) throw refused(`${host} resolves to ${why}`);
    if (isLoopbackHost(host) && classifyAddress(address) !== 'loopback') throw refused(`${host} resolves to a non-loopback address`);
  }
  return addresses;
}

/**
 * A `lookup` for net/tls `connect` that resolves, checks every address, and hands only checked
 * addresses to the socket. The name `localhost` must resolve to loopback addresses only.
 * Refusals are MandateError ERR_FORBIDDEN (they surface as the connection error).
 */
export function guardedLookup(policy: EgressPolicy): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    const host = bare(hostname);
    const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
    checkedAddresses(host, policy)
      .then((addresses) => {
        const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
        if (usable.length === 0) throw refused(`${host} has no IPv${family} address`);
        return usable;
      })
      .then(
        (usable) => (options.all === true ? callback(null, usable) : callback(null, usable[0]!.address, usable[0]!.family)),
        (err: unknown) => callback(err as NodeJS.ErrnoException, ''),
      );
  };
}

export interface GuardedAgentOptions extends EgressPolicy {
  /** Trust anchors (PEM) that replace the default CA list: for tests and labs with private CAs. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Milliseconds allowed for the TCP and TLS handshake (default 10 s). */
  connectTimeout?: number;
}

/**
 * An undici Agent whose every connection is checked: IP-literal hosts before connecting (sockets do
 * not look them up), names inside the socket's lookup (guardedLookup).
 */
export function guardedAgent(opts: GuardedAgentOptions): Agent {
  const connect = buildConnector({
    lookup: guardedLookup(opts),
    timeout: opts.connectTimeout ?? 10_000,
    ...(opts.ca !== undefined && { ca: opts.ca }),
  });
  return new Agent({
    connect: (options, callback) => {
      const host = bare(options.hostname);
      const why = isIP(host) === 0 ? undefined : addressRefusal(host, opts.allowPrivateAddresses);
      if (why !== undefined) callback(refused(`${host} is ${why}`), null);
      else connect(options, callback);
    },
  });
}
