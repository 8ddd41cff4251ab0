/**
 * `mandate policy ...`: working with Cedar policy sets, offline, on a directory of `.cedar` files and
 * `.cedarschema` fragments — validate it, run its tests, explain one decision, ask what an agent may
 * do for a person, and generate the schema fragment of an MCP server's tools (typed
 * `context.arguments` per tool) to keep beside the policies.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { MandateError } from '../../errors.ts';
import { whatCan } from '../../policy/can.ts';
import { decide } from '../../policy/decide.ts';
import { listMcpTools } from '../../policy/mcp-client.ts';
import { cedarSchemaFromTools } from '../../policy/mcp-schema.ts';
import { compilePolicySet, loadPolicyDirectory, type CompiledPolicySet } from '../../policy/policy-set.ts';
import { loadPolicyTests, parseRequest, runPolicyTests } from '../../policy/test-file.ts';
import { collect, print } from '../output.ts';

function compileDir(dir: string): CompiledPolicySet {
  return compilePolicySet(loadPolicyDirectory(dir));
}

function validateCommand(policy: Command): void {
  policy
    .command('validate')
    .description('parse and validate a policy directory strictly against the schema; every problem as file:line:column')
    .argument('<dir>', 'directory of .cedar policies and .cedarschema fragments')
    .addHelpText('after', `
Example:
  $ mandate policy validate config/policies`)
    .action((dir: string, _o: unknown, cmd: Command) => {
      const set = compileDir(dir);
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      if (json) print({ valid: true, version: set.version, policies: set.policies.size, actions: set.actions.size }, true);
      else process.stdout.write(`${dir}: ${set.policies.size} policies valid (${set.version})\n`);
    });
}

function testCommand(policy: Command): void {
  policy
    .command('test')
    .description('run a YAML file of requests with expected decisions; a diff for each failure, non-zero exit')
    .argument('<file>', 'the test file (see docs/policy.md)')
    .option('--policies <dir>', 'the policy directory (default: the file\'s `policies`)')
    .addHelpText('after', `
Example:
  $ mandate policy test config/policies/tests.yaml`)
    .action((file: string, o: { policies?: string }) => {
      const tests = loadPolicyTests(file);
      const dir = o.policies ?? tests.policiesDir;
      if (!dir) throw new MandateError('ERR_BAD_REQUEST', `${file} names no policies directory: add "policies: <dir>" or pass --policies`);
      const results = runPolicyTests(compileDir(dir), tests.tests);
      for (const r of results) {
        process.stdout.write(`${r.passed ? 'ok    ' : 'FAIL  '} ${r.name}\n`);
        for (const line of r.diff) process.stdout.write(`        ${line}\n`);
      }
      const failed = results.filter((r) => !r.passed).length;
      process.stdout.write(`${results.length - failed} passed, ${failed} failed\n`);
      if (failed > 0) process.exitCode = 1;
    });
}

function explainCommand(policy: Command): void {
  policy
    .command('explain')
    .description('decide one request (YAML, as in a test file\'s `request`) and show every determining policy with its reason')
    .argument('<request>', 'a YAML file holding one request')
    .requiredOption('--policies <dir>', 'the policy directory')
    .addHelpText('after', `
Example:
  $ mandate policy explain --policies config/policies request.yaml`)
    .action((file: string, o: { policies: string }, cmd: Command) => {
      const set = compileDir(o.policies);
      let raw: unknown;
      try {
        raw = parse(readFileSync(file, 'utf8'));
      } catch (err) {
        throw new MandateError('ERR_BAD_REQUEST', `${file}: ${(err as Error).message}`);
      }
      const decision = decide(set, parseRequest(raw, file));
      const determining = decision.policies.map((id) => {
        const p = set.policies.get(id);
        return { id, effect: p?.effect, reason: p?.reason ?? null, at: p ? `${p.file}:${p.line}` : null, approval: p?.approval ?? false };
      });
      print({ decision: decision.decision, determining, reasons: decision.reasons, errors: decision.errors, policy_set_version: decision.policySetVersion }, cmd.optsWithGlobals<{ json?: boolean }>().json === true);
    });
}

function canCommand(policy: Command): void {
  policy
    .command('can')
    .description('what this agent may do for this person across every action the schema knows (partial evaluation)')
    .requiredOption('--policies <dir>', 'the policy directory')
    .requiredOption('--agent <spiffe-id>', 'the agent')
    .option('--principal <person>', 'the person: their subject, or issuer#subject')
    .option('--principal-subject <sub>', 'the person\'s subject (instead of --principal)')
    .option('--principal-issuer <iss>', 'their identity provider (default: any; only policies that name one care)')
    .option('--group <group>', 'a group or role of the person (repeatable)', collect)
    .option('--scope <scope>', 'a scope the token would carry (repeatable; unknown when absent)', collect)
    .option('--chain <spiffe-id>', 'the delegation chain, outermost first (repeatable; unknown when absent)', collect)
    .addHelpText('after', `
Allowed and denied answers hold whatever the unknowns (arguments, time, mandate, the resource's
attributes) turn out to be; conditional answers list the conditions still open.

Example:
  $ mandate policy can --policies config/policies --agent spiffe://example.org/agent/triage-bot \\
      --principal alice --group engineering`)
    .action((o: { policies: string; agent: string; principal?: string; principalSubject?: string; principalIssuer?: string; group?: string[]; scope?: string[]; chain?: string[] }, cmd: Command) => {
      const hash = o.principal?.lastIndexOf('#') ?? -1;
      const subject = o.principalSubject ?? (o.principal !== undefined ? o.principal.slice(hash + 1) : undefined);
      const issuer = o.principalIssuer ?? (hash > 0 ? o.principal?.slice(0, hash) : undefined) ?? 'https://idp.invalid';
      if (!subject) throw new MandateError('ERR_BAD_REQUEST', 'name the person: --principal alice (or issuer#subject), or --principal-subject');
      const answers = whatCan(compileDir(o.policies), {
        agent: o.agent,
        principal: { issuer, subject, groups: o.group ?? [] },
        ...(o.scope && { scopes: o.scope }),
        ...(o.chain && { chain: o.chain }),
      });
      if (cmd.optsWithGlobals<{ json?: boolean }>().json === true) {
        print(answers, true);
        return;
      }
      for (const a of answers) {
        process.stdout.write(`${a.answer.padEnd(12)} ${a.action}\n`);
        for (const c of a.conditions) process.stdout.write(`             ${c.policy}: ${c.text}\n`);
        for (const e of a.errors) process.stdout.write(`             error: ${e}\n`);
      }
    });
}

/** `--header 'Name: value'`, repeatable. */
function header(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new MandateError('ERR_BAD_REQUEST', `--header must look like 'Name: value'`);
  return { ...previous, [value.slice(0, colon).trim()]: value.slice(colon + 1).trim() };
}

function schemaCommand(policy: Command): void {
  policy
    .command('schema')
    .description("generate the Cedar schema fragment of an MCP server's tools: one action per tool with its typed arguments")
    .requiredOption('--from-mcp <url>', 'the MCP server (Streamable HTTP endpoint)')
    // The program's global --server (Mandate API URL) takes this value wherever it appears on the
    // command line; it is read back from there, and is required to come from the command line.
    .option('--server <name>', "the server's name in Mandate: actions are Mandate::Tools::<name>::Action::\"<tool>\"")
    .option('--header <header>', "HTTP header for the MCP server, 'Name: value' (repeatable)", header)
    .option('--out <file>', 'write the fragment to this file instead of standard output')
    .option('--strict', 'exit with status 2 when some input schema cannot be expressed exactly')
    .addHelpText('after', `
What Cedar cannot express exactly (unions, tuples, maps, nullable values, date-time strings...) is
listed on standard error with what it became; the fragment is written regardless.

Examples:
  $ mandate policy schema --from-mcp http://127.0.0.1:9000/mcp --server billing --out policies/billing.cedarschema
  $ mandate policy schema --from-mcp https://tools.example/mcp --server github --header 'Authorization: Bearer ...' --strict`)
    .action(async (o: { fromMcp: string; header?: Record<string, string>; out?: string; strict?: boolean }, cmd: Command) => {
      if (cmd.getOptionValueSourceWithGlobals('server') !== 'cli') throw new MandateError('ERR_BAD_REQUEST', '--server <name> is required: the name policies use for this MCP server');
      const server = cmd.optsWithGlobals<{ server: string }>().server;
      const tools = await listMcpTools(o.fromMcp, { ...(o.header && { headers: o.header }) });
      const { text, unsupported } = cedarSchemaFromTools(server, tools);
      if (o.out) {
        writeFileSync(o.out, text);
        process.stderr.write(`wrote ${tools.length} tool action(s) to ${o.out}\n`);
      } else {
        process.stdout.write(text);
      }
      // Names and $refs come from the MCP server: no terminal control characters from there.
      const safe = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
      for (const u of unsupported) process.stderr.write(safe(`unsupported: tool ${JSON.stringify(u.tool)} ${u.path}: ${u.construct} -> ${u.treatedAs}`) + '\n');
      if (o.strict && unsupported.length > 0) process.exitCode = 2;
    });
}

/** Registers `mandate policy` and its subcommands. */
export function policyCommands(program: Command): void {
  const policy = program.command('policy').description('Cedar policies: validate, test, explain, what an agent can do, schema fragments for MCP tools');
  validateCommand(policy);
  testCommand(policy);
  explainCommand(policy);
  canCommand(policy);
  schemaCommand(policy);
}
