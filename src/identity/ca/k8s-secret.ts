import type { KeyObject, X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { MandateError } from '../../errors.ts';
import { certificatesToPem } from '../x509/pem.ts';

const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface K8sSecretOptions {
  name: string;
  namespace: string;
  certificate: X509Certificate;
  /** Intermediates above the CA that are not anchors, appended to tls.crt. */
  chain: X509Certificate[];
  trustAnchors: X509Certificate[];
  privateKey: KeyObject;
}

/**
 * The CA as a `kubernetes.io/tls` Secret manifest, the shape cert-manager's CA Issuer reads
 * (`tls.crt`, `tls.key`, and `ca.crt`). Contains the CA's private key: handle as a secret.
 *
 * @example fs.writeFileSync('ca-secret.yaml', toK8sTlsSecret({ name: 'mandate-ca', namespace: 'cert-manager', ...ca }));
 */
export function toK8sTlsSecret(opts: K8sSecretOptions): string {
  for (const [field, value] of [['name', opts.name], ['namespace', opts.namespace]] as const) {
    if (value.length > 253 || !K8S_NAME.test(value)) {
      throw new MandateError('ERR_BAD_REQUEST', `${field} "${value}" is not a valid Kubernetes name (lowercase RFC 1123 subdomain)`);
    }
  }
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
  const tlsCrt = certificatesToPem([opts.certificate, ...opts.chain.filter((c) => c !== opts.certificate)]);
  const tlsKey = opts.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: opts.name, namespace: opts.namespace, labels: { 'app.kubernetes.io/managed-by': 'mandate' } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': b64(tlsCrt), 'tls.key': b64(tlsKey), 'ca.crt': b64(certificatesToPem(opts.trustAnchors)) },
  });
}
