/**
 * The YAML side of configuration loading: the parsed value plus a way back from a key path to the line
 * it was written on, so every problem can point at `file:line`.
 *
 * @example
 *   const { source, problems } = readYaml('server:\n  lisen: x\n');
 *   source?.positionOf(['server', 'lisen'], 'key') // { line: 2, column: 3 }
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { ConfigProblem } from './problems.ts';

export type KeyPath = ReadonlyArray<string | number>;

export interface Position {
  line: number;
  column: number;
}

export interface YamlSource {
  /** The document as plain data (null for an empty document). */
  readonly data: unknown;
  /**
   * Where `path` is written: its key (`'key'`) or its value (`'value'`, falling back to the key). When
   * the path is absent, the position of its deepest present ancestor; undefined for the document root.
   */
  positionOf(path: KeyPath, which: 'key' | 'value'): Position | undefined;
}

/** Well above any real configuration, low enough to stop alias bombs. */
const MAX_ALIAS_COUNT = 100;

export function readYaml(text: string): { source?: YamlSource; problems: ConfigProblem[] } {
  const lineCounter = new LineCounter();
  // prettyErrors off: the pretty form quotes the offending source line, which may hold a secret.
  // logLevel 'error': yaml would otherwise print its warnings (e.g. about mapping keys) to the console.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  const problems: ConfigProblem[] = [];
  for (const err of [...doc.errors, ...doc.warnings]) {
    const pos = lineCounter.linePos(err.pos[0]);
    const message =
      err.code === 'MULTIPLE_DOCS' ? 'the file must contain exactly one YAML document' : err.message;
    problems.push({ keyPath: '', message: `YAML: ${message}`, line: pos.line, column: pos.col });
  }
  if (problems.length > 0) return { problems };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // Unresolved or excessive aliases surface only here, without a position.
    return { problems: [{ keyPath: '', message: `YAML: ${err instanceof Error ? err.message : String(err)}` }] };
  }
  return {
    source: {
      data,
      positionOf: (path, which) => positionOf(doc, lineCounter, path, which),
    },
    problems,
  };
}

function positionOf(doc: Document, lineCounter: LineCounter, path: KeyPath, which: 'key' | 'value'): Position | undefined {
  let node: Node | null | undefined = doc.contents;
  let found: Node | undefined;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]!;
    if (node && isAlias(node)) node = node.resolve(doc);
    let keyNode: Node | undefined;
    let valueNode: Node | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      keyNode = pair.key as Node;
      valueNode = pair.value as Node | null;
    } else if (isSeq(node) && typeof segment === 'number') {
      valueNode = node.items[segment] as Node | undefined;
      if (!valueNode) break;
    } else {
      break;
    }
    const last = i === path.length - 1;
    found = last && which === 'key' ? (keyNode ?? valueNode ?? undefined) : (valueNode?.range ? valueNode : keyNode);
    node = valueNode;
  }
  const offset = found?.range?.[0];
  if (offset === undefined) return undefined;
  const pos = lineCounter.linePos(offset);
  return { line: pos.line, column: pos.col };
}
