/**
 * The real kubectl reads the rendered folder both ways users apply it:
 * `kubectl apply -f dist/` (the files) and `kubectl apply -k dist/` (the
 * generated Kustomization). Both must yield the same objects.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { ROOT } from './harness';

const DIST = path.join(ROOT, 'dist');
const KUBECTL_VERSION = JSON.parse(execFileSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8' })).clientVersion.gitVersion;

const key = (o: any) => `${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;

describe(`kubectl ${KUBECTL_VERSION}`, () => {
  test('kubectl kustomize dist/ yields exactly the objects of the files in dist/', () => {
    const built = (yaml.loadAll(execFileSync('kubectl', ['kustomize', DIST], { encoding: 'utf8', maxBuffer: 64 << 20 })) as any[]).filter(Boolean);
    const files = fs
      .readdirSync(DIST)
      .filter((f) => f.endsWith('.k8s.yaml'))
      .flatMap((f) => (yaml.loadAll(fs.readFileSync(path.join(DIST, f), 'utf8')) as any[]).filter(Boolean));
    expect(built.map(key).sort()).toEqual(files.map(key).sort());
    // Kustomize changes nothing in them either.
    const byKey = new Map(files.map((o) => [key(o), o]));
    for (const o of built) expect(o).toEqual(byKey.get(key(o)));
  });
});
