/**
 * One place that wires @peculiar/x509 to Node's WebCrypto. Import `x509` from here, never from the
 * package directly, so the provider is always set.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;
