/**
 * Listen addresses and URLs in the configuration: parsing `host:port`, telling loopback from the
 * rest (plain HTTP and dev-only features are confined to loopback), and checking fetch URLs.
 *
 * @example
 *   parseListen('[::1]:8420')            // { host: '::1', port: 8420 }
 *   isLoopbackHost('127.0.0.2')          // true
 *   checkFetchUrl('http://bundles.example.org/b') // 'must use https (http is allowed only on a loopback address)'
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { ListenAddress } from './types.ts';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** The address, or a sentence saying what is wrong with it. */
export function parseListen(text: string): ListenAddress | string {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return 'must be host:port, e.g. 127.0.0.1:8420';
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!isIPv6(host)) return 'the address in brackets must be an IPv6 address';
  } else if (host.includes(':')) {
    return 'an IPv6 host must be in brackets, e.g. [::1]:8420';
  } else if (host === '') {
    return 'host is required (use 0.0.0.0:<port> to listen on all interfaces)';
  } else if (!isIPv4(host) && !HOSTNAME.test(host)) {
    return 'host must be an IP address or a host name';
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) return 'port must be a number from 0 to 65535';
  return { host, port: Number(portText) };
}

/** True for `localhost`, 127.0.0.0/8 and ::1 (also IPv4-mapped): addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) {
    const lower = h.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

/** `host` for use inside a URL: IPv6 in brackets; wildcard addresses become loopback. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * Checks a URL Mandate will fetch from (JWKS, bundle endpoints): https, or http on loopback for
 * development; no credentials, no fragment. Returns a sentence when it is unacceptable.
 */
export function checkFetchUrl(text: string): string | undefined {
  const url = parseUrl(text);
  if (url === undefined) return 'must be an absolute URL';
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an https URL';
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    return 'must use https (http is allowed only on a loopback address)';
  }
  if (url.username !== '' || url.password !== '') return 'must not contain a user name or password';
  if (url.hash !== '') return 'must not contain a fragment (#...)';
  return undefined;
}

export function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}
