// A TypeScript-SDK MCP server for the interop suite, written in the styles
// that the SDK's own examples and README document. One file, four styles:
//
//   --style sse        stateful, responses as SSE streams, an unknown session
//                      ID answered 404 (the SDK 1.32 examples:
//                      simpleStreamableHttp.js); has resume_session
//   --style json       stateful, enableJsonResponse (jsonResponseStreamableHttp.js),
//                      404 for an unknown session; no resume_session
//   --style legacy     stateful, the README's earlier pattern: anything but a
//                      known session or an initialize is answered HTTP 400
//                      {"jsonrpc":"2.0","error":{"code":-32000,"message":
//                      "Bad Request: No valid session ID provided"},"id":null};
//                      has resume_session
//   --style stateless  sessionIdGenerator: undefined, a new server per request
//
// --no-resume / --resume override whether resume_session is registered.
//
// Every tool keeps its state in Redis (REDIS_URL, required), so that a
// SIGKILLed and restarted server still knows what ran:
//   increment         counter of the session +1 (not annotated idempotent)
//   slow_increment    {ms}: records a start, sleeps ms, then increments
//   get_counter       the session's counter (readOnlyHint)
//   slow_get          {ms}: sleeps ms, then reads the counter (readOnlyHint)
//   runs              {"starts","runs"}: executions of the increment tools on
//                     this Redis since it started (readOnlyHint)
//   resume_session    {old_session_id}: copies the old session's keys
//
// Listens on 127.0.0.1:PORT (PORT env or --port N; 0 picks one) and prints
// "READY <port>" once it accepts connections.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { createClient } from 'redis';
import * as z from 'zod/v4';

const { values: flags } = parseArgs({
  options: {
    style: { type: 'string', default: 'sse' },
    port: { type: 'string', default: process.env.PORT ?? '0' },
    resume: { type: 'boolean' },
    'no-resume': { type: 'boolean' },
  },
});
const style = flags.style;
if (!['sse', 'json', 'legacy', 'stateless'].includes(style)) {
  console.error(`unknown --style ${style}: want sse, json, legacy or stateless`);
  process.exit(2);
}
let withResume = style === 'sse' || style === 'legacy';
if (flags.resume) withResume = true;
if (flags['no-resume']) withResume = false;

if (!process.env.REDIS_URL) {
  console.error('REDIS_URL is not set: the tools keep their counts in Redis');
  process.exit(2);
}
const redis = createClient({ url: process.env.REDIS_URL });
redis.on('error', err => console.error('redis:', err.message));
await redis.connect();

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const text = value => ({ content: [{ type: 'text', text: typeof value === 'string' ? value : JSON.stringify(value) }] });
// A stateless request has no session: its counter is one shared key.
const sessionKey = (sessionId, name) => `sess:${sessionId ?? 'stateless'}:${name}`;

async function increment(sessionId) {
  const n = await redis.incr(sessionKey(sessionId, 'counter'));
  await redis.incr('runs');
  return n;
}

function getServer() {
  const server = new McpServer({ name: `ts-sdk-${style}`, version: '1.0.0' }, { capabilities: { logging: {} } });

  server.registerTool('increment', {
    description: 'Adds one to the session counter and returns it. Not idempotent.',
    inputSchema: {},
  }, async (_args, extra) => text(String(await increment(extra.sessionId))));

  server.registerTool('slow_increment', {
    description: 'Records a start, waits ms milliseconds, then adds one to the session counter.',
    inputSchema: { ms: z.number().int().min(0).default(1000) },
  }, async ({ ms }, extra) => {
    await redis.incr('starts');
    await sleep(ms);
    return text(String(await increment(extra.sessionId)));
  });

  server.registerTool('get_counter', {
    description: 'Returns the session counter.',
    inputSchema: {},
    annotations: { readOnlyHint: true },
  }, async (_args, extra) => text(String(Number(await redis.get(sessionKey(extra.sessionId, 'counter')) ?? 0))));

  server.registerTool('slow_get', {
    description: 'Waits ms milliseconds, then returns the session counter.',
    inputSchema: { ms: z.number().int().min(0).default(1000) },
    annotations: { readOnlyHint: true },
  }, async ({ ms }, extra) => {
    await redis.incr('reads_started');
    await sleep(ms);
    return text(String(Number(await redis.get(sessionKey(extra.sessionId, 'counter')) ?? 0)));
  });

  server.registerTool('runs', {
    description: 'How often the increment tools started and finished on this Redis.',
    inputSchema: {},
    annotations: { readOnlyHint: true },
  }, async () => {
    const [starts, runs, reads] = await redis.mGet(['starts', 'runs', 'reads_started']);
    return text({ starts: Number(starts ?? 0), runs: Number(runs ?? 0), reads_started: Number(reads ?? 0) });
  });

  if (withResume) {
    server.registerTool('resume_session', {
      description: 'Copies the state of an earlier session into this one.',
      inputSchema: { old_session_id: z.string().min(1).max(128) },
      annotations: { idempotentHint: true },
    }, async ({ old_session_id: oldId }, extra) => {
      if (!extra.sessionId) {
        return { ...text('resume_session needs a session'), isError: true };
      }
      if (oldId === extra.sessionId) {
        return text({ status: 'same_session', keys_copied: 0 });
      }
      if (/[*?[\]]/.test(oldId)) {
        return { ...text('old_session_id has pattern characters'), isError: true };
      }
      const prefix = `sess:${oldId}:`;
      const keys = await redis.keys(`${prefix}*`);
      let copied = 0;
      for (const key of keys) {
        const dest = sessionKey(extra.sessionId, key.slice(prefix.length));
        if (await redis.copy(key, dest, { REPLACE: true })) copied++;
      }
      return text({ status: copied > 0 ? 'resumed' : 'not_found', keys_copied: copied });
    });
  }
  return server;
}

const app = createMcpExpressApp();
const transports = new Map();

function badRequest(res) {
  res.status(400).json({
    jsonrpc: '2.0',
    error: { code: -32000, message: 'Bad Request: No valid session ID provided' },
    id: null,
  });
}

if (style === 'stateless') {
  app.post('/mcp', async (req, res) => {
    const server = getServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => { transport.close(); server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const notAllowed = (_req, res) => res.status(405).json({
    jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null,
  });
  app.get('/mcp', notAllowed);
  app.delete('/mcp', notAllowed);
} else {
  app.post('/mcp', async (req, res) => {
    const sessionId = req.headers['mcp-session-id'];
    try {
      let transport = sessionId ? transports.get(sessionId) : undefined;
      if (!transport) {
        if (!sessionId && isInitializeRequest(req.body)) {
          transport = new StreamableHTTPServerTransport({
            sessionIdGenerator: () => randomUUID(),
            enableJsonResponse: style === 'json',
            onsessioninitialized: id => { transports.set(id, transport); },
          });
          transport.onclose = () => {
            if (transport.sessionId) transports.delete(transport.sessionId);
          };
          await getServer().connect(transport);
        } else if (sessionId && style !== 'legacy') {
          res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
          return;
        } else {
          badRequest(res);
          return;
        }
      }
      await transport.handleRequest(req, res, req.body);
    } catch (error) {
      console.error('Error handling MCP request:', error);
      if (!res.headersSent) {
        res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
      }
    }
  });
  const sessionRequest = async (req, res) => {
    const sessionId = req.headers['mcp-session-id'];
    const transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId && style !== 'legacy') {
        res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      } else {
        badRequest(res);
      }
      return;
    }
    await transport.handleRequest(req, res);
  };
  if (style === 'json') {
    app.get('/mcp', (_req, res) => res.status(405).set('Allow', 'POST').send('Method Not Allowed'));
  } else {
    app.get('/mcp', sessionRequest);
  }
  app.delete('/mcp', sessionRequest);
}

const listener = app.listen(Number(flags.port), '127.0.0.1', err => {
  if (err) {
    console.error('listen:', err.message);
    process.exit(1);
  }
  console.log(`READY ${listener.address().port}`);
});
