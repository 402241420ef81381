/**
 * Our .env reader against the real one: every line of the unit tests' table
 * (test/env-file.cases.ts) is given to compose-go, the library docker compose
 * reads .env files with, and must come out with the value the table expects,
 * which is what our reader gives too (test/env-file.test.ts). So the table is
 * docker compose's behaviour, not ours restated.
 */
import { spawnSync } from 'child_process';
import { parseEnvFile } from '../../charts/migrate/env-file';
import { COMPOSE_LINES } from '../env-file.cases';
import { programs } from './harness';

const compose = (text: string) => {
  const r = spawnSync(programs().composeDotenv, { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`compose-go refused ${JSON.stringify(text)}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string>;
};

test.each(COMPOSE_LINES)('compose-go reads %j as our table says (%s = %j)', (text, variable, value) => {
  expect(compose(text)[variable]).toBe(value);
  expect(parseEnvFile(text, '.env').get(variable)).toBe(value);
});

test('what we refuse, compose reads as something the old file never meant', () => {
  // A reference to a variable the file does not define: compose substitutes "" (with a warning).
  expect(compose('A=${NOT_DEFINED}')).toEqual({ A: '' });
  // Text after a closing quote: compose makes it a variable with an empty name.
  expect(compose('A="x" trailing')).toEqual({ A: 'x', '': 'trailing' });
});
