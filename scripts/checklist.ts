/**
 * `npm run checklist [-- --json]`: the production checklist, read from the
 * config and the rendered manifests, not kept by hand. Honours KUDO_CONFIG
 * like `npm run synth`.
 */
import { ConfigError, loadConfig } from '../charts/config';
import { checklist, formatText, renderedManifests } from './inspect';

try {
  const config = loadConfig(process.env.KUDO_CONFIG);
  const c = checklist(config, renderedManifests(config));
  process.stdout.write(process.argv.includes('--json') ? `${JSON.stringify(c, null, 2)}\n` : formatText(c));
} catch (e) {
  process.stderr.write(`kudo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
}
