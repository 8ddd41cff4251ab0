/**
 * The `static` attestor: the workload simply states its selectors. It proves nothing, so it exists
 * only for development and is refused unless an operator turns it on explicitly.
 */
import { MandateError } from '../../../errors.ts';
import type { AttestationRequest, AttestationResult, Attestor } from '../attestor.ts';

const SELECTOR_PATTERN = /^[a-z0-9_-]+:.+$/;
const MAX_SELECTOR_LENGTH = 256;
const MAX_SELECTORS = 32;

export interface StaticAttestorConfig {
  enabled: boolean;
  /** When non-empty, the only selectors a workload may claim. */
  allowedSelectors: string[];
}

/**
 * The refusal for static attestation while it is off; the catalog uses it too, so the operator sees
 * the same hint whichever path refused.
 *
 * @example
 *   throw staticDisabledError();
 */
export function staticDisabledError(): MandateError {
  return new MandateError(
    'ERR_ATTESTOR_DISABLED',
    'static attestation is a development mode that proves nothing; it must be enabled explicitly with attestation.static.enabled',
  );
}

function readSelectors(req: AttestationRequest): string[] {
  const value = req['selectors'];
  if (!Array.isArray(value) || value.length === 0) {
    throw new MandateError('ERR_BAD_REQUEST', 'static attestation requires field "selectors" (a non-empty array of strings)');
  }
  if (value.length > MAX_SELECTORS) {
    throw new MandateError('ERR_BAD_REQUEST', `static attestation accepts at most ${MAX_SELECTORS} selectors, got ${value.length}`);
  }
  return value.map((selector: unknown, i) => {
    if (typeof selector !== 'string') {
      throw new MandateError('ERR_BAD_REQUEST', `static attestation selectors[${i}] is not a string`);
    }
    if (selector.length > MAX_SELECTOR_LENGTH) {
      throw new MandateError('ERR_BAD_REQUEST', `static attestation selectors[${i}] exceeds ${MAX_SELECTOR_LENGTH} characters`);
    }
    if (!SELECTOR_PATTERN.test(selector)) {
      throw new MandateError('ERR_BAD_REQUEST', `static attestation selectors[${i}] is not of the form type:value (type in [a-z0-9_-])`);
    }
    return selector;
  });
}

/**
 * Creates the static attestor. Request: `{ type: 'static', selectors: string[] }`.
 *
 * @example
 *   const attestor = createStaticAttestor({ enabled: true, allowedSelectors: ['dev:agent:triage'] });
 *   await attestor.attest({ type: 'static', selectors: ['dev:agent:triage'] }, new Date());
 *   // -> { attestor: 'static', selectors: ['dev:agent:triage'], entryIds: [], subject: 'static' }
 */
export function createStaticAttestor(cfg: StaticAttestorConfig): Attestor {
  const allowed = new Set(cfg.allowedSelectors);
  return {
    type: 'static',
    async attest(req: AttestationRequest): Promise<AttestationResult> {
      if (!cfg.enabled) throw staticDisabledError();
      const selectors = readSelectors(req);
      if (allowed.size > 0) {
        const refused = selectors.find((s) => !allowed.has(s));
        if (refused !== undefined) {
          throw new MandateError('ERR_ATTESTATION_FAILED', `static attestation selector "${refused}" is not in attestation.static.allowedSelectors`);
        }
      }
      return { attestor: 'static', selectors: [...new Set(selectors)], entryIds: [], subject: 'static' };
    },
  };
}
