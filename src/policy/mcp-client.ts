/**
 * Reads an MCP server's tools (every page of `tools/list`) over Streamable HTTP with the MCP SDK's
 * Client, for generating the Cedar schema fragment of its tools (see mcp-schema.ts).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { MandateError } from '../errors.ts';

export type { Tool };

/**
 * Connects to the MCP server at `url`, lists all its tools and disconnects.
 *
 * @throws MandateError ERR_SERVER_UNREACHABLE when the server cannot be reached or refuses, and
 *   ERR_SERVER_RESPONSE_INVALID when it pages in a circle.
 */
export async function listMcpTools(url: string, opts: { headers?: Record<string, string> } = {}): Promise<Tool[]> {
  let endpoint: URL;
  try {
    endpoint = new URL(url);
  } catch {
    throw new MandateError('ERR_BAD_REQUEST', `not a URL: ${JSON.stringify(url)}`);
  }
  const client = new Client({ name: 'mandate-policy-schema', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(endpoint, { requestInit: { headers: opts.headers ?? {} } });
  try {
    await client.connect(transport);
    const tools: Tool[] = [];
    const cursors = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor });
      tools.push(...page.tools);
      cursor = page.nextCursor;
      if (cursor !== undefined && cursors.has(cursor)) throw new MandateError('ERR_SERVER_RESPONSE_INVALID', `${endpoint.origin}${endpoint.pathname} repeated the tools/list cursor ${JSON.stringify(cursor)}`);
      if (cursor !== undefined) cursors.add(cursor);
    } while (cursor !== undefined);
    return tools;
  } catch (err) {
    if (err instanceof MandateError) throw err;
    throw new MandateError('ERR_SERVER_UNREACHABLE', `cannot list the tools of ${endpoint.origin}${endpoint.pathname}: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.close();
  }
}
