/**
 * Certificates for the tests, made with openssl the way cert-manager's CA
 * issuer makes them: an EC P-256 CA, and server certificates it signs for
 * the names a rendered Certificate asks for. A Secret cert-manager writes
 * holds tls.crt, tls.key and ca.crt; `issueServerCert` writes those three files.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A self-signed CA in `dir`: <name>.crt and <name>.key. */
export function makeCa(dir: string, name: string): void {
  openssl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
  );
}

/**
 * A server certificate for `dnsNames` signed by the CA <ca>.crt/<ca>.key of `dir`, written as a cert-manager Secret's
 * files into `out` (tls.key readable by its owner alone, as PostgreSQL insists when the owner runs it). Returns its
 * serial number (hex, as openssl prints it).
 */
export function issueServerCert(dir: string, ca: string, dnsNames: string[], out: string): string {
  fs.mkdirSync(out, { recursive: true });
  const name = `server-${fs.readdirSync(dir).filter((f) => f.startsWith('server-') && f.endsWith('.crt')).length}`;
  openssl(dir, 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${dnsNames[0]}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
  fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  );
  // Replaced as the kubelet replaces a Secret volume's files: whole, never half-written.
  for (const [file, from, mode] of [
    ['tls.crt', `${name}.crt`, 0o644],
    ['tls.key', `${name}.key`, 0o600],
    ['ca.crt', `${ca}.crt`, 0o644],
  ] as const) {
    const tmp = path.join(out, `.${file}.new`);
    fs.copyFileSync(path.join(dir, from), tmp);
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, path.join(out, file));
  }
  return execFileSync('openssl', ['x509', '-noout', '-serial', '-in', path.join(dir, `${name}.crt`)], { encoding: 'utf8' })
    .trim()
    .replace(/^serial=/, '');
}
