import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { createLogger } from './logger.ts';
import { startTracing, withSpan } from './tracing.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  let text = '';
  const destination = new Writable({
    write(chunk, _enc, done) {
      text += chunk.toString();
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines, text: () => text };
}

describe('logger', () => {
  before(async () => {
    await startTracing({ otlpEndpoint: undefined, serviceName: 'mandate', sampleRatio: 1 });
  });

  it('puts the active span\'s trace and span ids on every line, children included', async () => {
    const { logger, lines } = capture();
    logger.info('before');
    const ids = await withSpan('work', {}, async (span) => {
      logger.info('inside');
      await new Promise((r) => setTimeout(r, 1));
      logger.child({ component: 'x' }).warn({ detail: 1 }, 'child inside, after an await');
      return span.spanContext();
    });
    logger.info('after');
    const [outside, inside, child, later] = lines;
    assert.equal(outside?.trace_id, undefined);
    assert.equal(inside?.trace_id, ids.traceId);
    assert.equal(inside?.span_id, ids.spanId);
    assert.equal(child?.trace_id, ids.traceId);
    assert.equal(child?.component, 'x');
    assert.equal(later?.trace_id, undefined);
  });

  it('redacts tokens, secrets, keys and credential headers wherever a caller put them', () => {
    const { logger, text } = capture();
    const secrets = {
      token: 'tok-1', secret: 'sec-2', password: 'pw-3', adminToken: 'adm-4', access_token: 'at-5', refresh_token: 'rt-6', id_token: 'it-7',
      subject_token: 'st-8', actor_token: 'act-9', client_secret: 'cs-10', client_assertion: 'ca-11', code_verifier: 'cv-12', private_key: 'pk-13',
      privateKey: 'pk-14', kek: 'kek-15', dpop: 'dpop-16', key_pem: 'kp-17',
    };
    logger.info(secrets, 'top level');
    logger.info({ body: secrets }, 'one level down');
    logger.info({ req: { headers: { authorization: 'Bearer hdr-18', cookie: 'sid=hdr-19', dpop: 'hdr-20' } } }, 'request headers');
    logger.info({ headers: { authorization: 'DPoP hdr-21', cookie: 'sid=hdr-22' } }, 'headers');
    logger.info({ attestation: { type: 'join_token', token: 'jt-23' } }, 'attestation');
    const out = text();
    for (const value of [...Object.values(secrets), 'hdr-18', 'hdr-19', 'hdr-20', 'hdr-21', 'hdr-22', 'jt-23']) {
      assert.ok(!out.includes(value), `${value} reached the log`);
    }
    assert.match(out, /\[redacted\]/);
    assert.match(out, /"type":"join_token"/, 'what is not secret stays');
  });

  it('keeps error codes', () => {
    const { logger, lines } = capture();
    logger.error({ err: Object.assign(new Error('store down'), { code: 'ERR_STORE' }) }, 'failed');
    assert.equal((lines[0]?.err as { code?: string }).code, 'ERR_STORE');
  });
});
