/**
 * No hand-written function is longer than 150 lines (issue 27): a function that long holds more than one idea, and its
 * reader has to hold all of them. Measured with the TypeScript compiler over the shipped code (charts/, main.ts) and
 * the operator tools (scripts/), from a function's first line (its doc comment not counted) to its last.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..');
const LIMIT = 150;

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** Every function, method, constructor and arrow function of a file, with its name and length in lines. */
export function functionLengths(file: string, text: string): { name: string; lines: number }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node, owner: string): void => {
    let name = owner;
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body !== undefined) {
      const n = node as ts.FunctionLikeDeclaration;
      const own = ts.isConstructorDeclaration(n)
        ? 'constructor'
        : n.name !== undefined
          ? n.name.getText(sf)
          : ts.isVariableDeclaration(n.parent)
            ? n.parent.name.getText(sf)
            : '(anonymous)';
      name = owner ? `${owner}.${own}` : own;
      const start = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      out.push({ name: `${file}:${start + 1} ${name}`, lines: end - start + 1 });
    } else if (ts.isClassDeclaration(node) && node.name !== undefined) {
      name = node.name.text;
    }
    ts.forEachChild(node, (child) => visit(child, name));
  };
  visit(sf, '');
  return out;
}

test(`no function in charts/, main.ts or scripts/ is over ${LIMIT} lines`, () => {
  const files = ['main.ts', ...sources('charts'), ...sources('scripts')];
  expect(files.length).toBeGreaterThan(30);
  const all = files.flatMap((f) => functionLengths(f, fs.readFileSync(path.join(ROOT, f), 'utf8')));
  expect(all.filter((f) => f.lines > LIMIT).map((f) => `${f.name}: ${f.lines} lines`)).toEqual([]);
});

test('the measure counts a function from its first line to its last (it can fail)', () => {
  const body = Array.from({ length: LIMIT }, (_, i) => `  const x${i} = ${i};`).join('\n');
  const lengths = functionLengths('x.ts', `/** doc */\nfunction long() {\n${body}\n}\nclass C {\n  constructor() {\n    const f = () => {\n      return 1;\n    };\n  }\n}\n`);
  expect(lengths).toEqual([
    { name: 'x.ts:2 long', lines: LIMIT + 2 },
    { name: 'x.ts:155 C.constructor', lines: 5 },
    { name: 'x.ts:156 C.constructor.f', lines: 3 },
  ]);
});
