/**
 * The `kubernetes.io` claim of a projected service-account token, checked against `sub`. Only names
 * that Kubernetes itself would accept pass, so a selector can never smuggle a `:` or whitespace.
 */
import type { JWTPayload } from 'jose';
import { MandateError } from '../../../errors.ts';

/** DNS-1123 label: namespaces. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** DNS-1123 subdomain: service accounts and pods. */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes uids are UUIDs; accept any short hex-and-dash string rather than one UUID layout. */
const UID = /^[0-9a-fA-F-]{1,64}$/;

export interface ServiceAccountClaims {
  namespace: string;
  serviceAccount: string;
  pod?: { name: string; uid: string };
}

function invalid(message: string): MandateError {
  return new MandateError('ERR_K8S_TOKEN_INVALID', message);
}

function objectAt(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`token claim "${path}" is missing or not an object`);
  return value as Record<string, unknown>;
}

function nameAt(value: unknown, path: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw invalid(`token claim "${path}" is missing or not a valid Kubernetes name`);
  return value;
}

/**
 * Reads and cross-checks the service-account identity of verified token claims.
 *
 * @example
 *   readServiceAccountClaims({ sub: 'system:serviceaccount:payments:triage-bot',
 *     'kubernetes.io': { namespace: 'payments', serviceaccount: { name: 'triage-bot', uid: '…' } } });
 *   // -> { namespace: 'payments', serviceAccount: 'triage-bot' }
 */
export function readServiceAccountClaims(claims: JWTPayload): ServiceAccountClaims {
  const k8s = objectAt(claims['kubernetes.io'], 'kubernetes.io');
  const namespace = nameAt(k8s['namespace'], 'kubernetes.io.namespace', DNS_LABEL);
  const sa = objectAt(k8s['serviceaccount'], 'kubernetes.io.serviceaccount');
  const serviceAccount = nameAt(sa['name'], 'kubernetes.io.serviceaccount.name', DNS_SUBDOMAIN);
  const expectedSub = `system:serviceaccount:${namespace}:${serviceAccount}`;
  if (claims.sub !== expectedSub) {
    throw invalid(`token "sub" ${JSON.stringify(claims.sub ?? null)} does not match its kubernetes.io claim (expected "${expectedSub}")`);
  }
  if (k8s['pod'] === undefined) return { namespace, serviceAccount };
  const pod = objectAt(k8s['pod'], 'kubernetes.io.pod');
  return {
    namespace,
    serviceAccount,
    pod: { name: nameAt(pod['name'], 'kubernetes.io.pod.name', DNS_SUBDOMAIN), uid: nameAt(pod['uid'], 'kubernetes.io.pod.uid', UID) },
  };
}
