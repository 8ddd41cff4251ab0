/**
 * The demo issue tracker as a local stdio MCP server, for gateways and clients that start tool
 * servers as processes: `node --import tsx src/demo/issue-tracker-stdio.ts`. Same tools and seed data
 * as the HTTP tracker; no caller verification (whoever starts the process owns it). Stdout carries
 * only MCP messages, so nothing else may print there.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createIssueTrackerServer } from './issue-tracker.ts';

const server = createIssueTrackerServer();
const transport = new StdioServerTransport();
// The client ends the session by closing our stdin; leave then, so no orphan process remains.
process.stdin.on('end', () => {
  void server.close().finally(() => process.exit(0));
});
await server.connect(transport);
