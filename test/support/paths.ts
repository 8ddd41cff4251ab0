import { resolve } from 'node:path';

/** The shared, read-only test vectors beside the repository. */
export const VECTORS = resolve(process.cwd(), '../shared/vectors');
