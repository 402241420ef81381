/**
 * `npm run diagram`: draws docs/architecture.svg from the rendered manifests
 * of the default config (public hosts, routes, workloads with their
 * Services and ports, volumes, and the flows between workloads). CI redraws
 * it and fails when the committed picture is stale, as for dist/.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../charts/config';
import { architecture, renderedManifests, toSvg } from './inspect';

export const DIAGRAM_FILE = path.join('docs', 'architecture.svg');

// Always the embedded defaults: the committed picture matches the committed dist/.
const svg = toSvg(architecture(renderedManifests(loadConfig(undefined))));
fs.mkdirSync(path.dirname(DIAGRAM_FILE), { recursive: true });
fs.writeFileSync(`${DIAGRAM_FILE}.tmp`, svg);
fs.renameSync(`${DIAGRAM_FILE}.tmp`, DIAGRAM_FILE);
process.stderr.write(`kudo: wrote ${DIAGRAM_FILE}\n`);
