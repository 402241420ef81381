/**
 * How Synapse and the backups reach PostgreSQL, whichever runs it: the
 * StatefulSet, a CloudNativePG Cluster or a database outside the cluster
 * (with TLS and a CA to check its certificate against).
 */
import { k8s } from 'cdk8s-plus-28';

export interface DatabaseTls {
  /** libpq's sslmode; verify-full checks the certificate and the host name. */
  readonly sslmode: 'verify-full' | 'verify-ca' | 'require' | 'disable';
  /** The CA that signed the server's certificate. @default - none (sslmode require or disable) */
  readonly ca?: { readonly kind: 'Secret' | 'ConfigMap'; readonly name: string; readonly key: string };
}

export interface DatabaseConnection {
  readonly host: string;
  readonly port: number;
  /** The database and the role Synapse uses. */
  readonly name: string;
  readonly user: string;
  /** Where the role's password is: a Secret's name and key (the config's SecretRef). */
  readonly password: { readonly name: string; readonly key: string };
  /** @default - no TLS settings (a database inside the cluster) */
  readonly tls?: DatabaseTls;
}

/** Where the CA file is mounted, and its path. */
export const DB_CA_DIR = '/db-ca';
export const DB_CA_FILE = `${DB_CA_DIR}/ca.crt`;

/** The volume holding the CA file, if the connection checks one. */
export function databaseCaVolume(db: DatabaseConnection): k8s.Volume | undefined {
  const ca = db.tls?.ca;
  if (ca === undefined) return undefined;
  const items = [{ key: ca.key, path: 'ca.crt' }];
  return ca.kind === 'Secret' ? { name: 'db-ca', secret: { secretName: ca.name, items, defaultMode: 0o444 } } : { name: 'db-ca', configMap: { name: ca.name, items } };
}

/** libpq's environment for the connection's TLS, for pg_dump and psql. */
export function libpqTlsEnv(db: DatabaseConnection): k8s.EnvVar[] {
  if (db.tls === undefined) return [];
  return [{ name: 'PGSSLMODE', value: db.tls.sslmode }, ...(db.tls.ca !== undefined ? [{ name: 'PGSSLROOTCERT', value: DB_CA_FILE }] : [])];
}
