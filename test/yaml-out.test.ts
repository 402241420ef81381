import * as yaml from 'js-yaml';
import { toYaml } from '../charts/render/yaml-out';
import { config, synthAll } from './util';

const roundTrip = (o: Record<string, unknown>) => yaml.load(toYaml(o));

test('every rendered object reads back exactly, for the default and an everything-on config', () => {
  const everything = config({
    routing: 'gateway-api',
    gatewayApi: { gatewayClassName: 'cilium' },
    monitoring: { enabled: true },
    argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git' },
    backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/b' } },
    livekit: { replicas: 2 },
    coturn: { publicIp: '203.0.113.1' },
  });
  for (const objects of [synthAll(), synthAll(everything)]) {
    for (const o of objects) expect(roundTrip(o)).toEqual(o);
  }
});

test('strings that YAML would read as something else are quoted', () => {
  const tricky = [
    '',
    'yes',
    'No',
    'on',
    'OFF',
    'y',
    'null',
    '~',
    'true',
    '123',
    '-1',
    '1.5',
    '1e3',
    '0x1F',
    '0o17',
    '017',
    '1:20',
    '.inf',
    '.NaN',
    '-c',
    '- x',
    '::/0',
    'a: b',
    'a:',
    'a #b',
    '#x',
    ' lead',
    'trail ',
    '*',
    '&x',
    '!tag',
    '%x',
    '@x',
    '`x',
    '{a}',
    '[a]',
    ',',
    '"q"',
    "'q'",
    '|',
    '>',
    '? x',
    '$(HOST_IP)',
    'ed25519 a_Ab 0123+/',
    'é',
    '\t',
  ];
  for (const s of tricky) expect([s, roundTrip({ v: s })]).toEqual([s, { v: s }]);
});

test('multi-line text becomes a literal block that keeps its line ends', () => {
  for (const s of ['a\nb', 'a\nb\n', 'a\nb\n\n', '\nx', '  indented\nx\n', 'tab\tinside\nx', 'trailing \nx', 'x\n\n\ny\n']) {
    expect([s, roundTrip({ v: s })]).toEqual([s, { v: s }]);
  }
  expect(toYaml({ conf: 'a: 1\nb: 2\n' })).toBe('conf: |\n  a: 1\n  b: 2\n');
});

test('lists, nested lists, empty collections and numbers', () => {
  const o = { a: [1, 'x', true, null, [2, [3]], { k: 'v', l: [] }], e: {}, f: [], n: -0.5, m: [{}, []] };
  expect(roundTrip(o)).toEqual(o);
});
