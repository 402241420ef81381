/**
 * The package's public API, for cdk8s apps of your own: the whole stack as
 * one construct, the config it takes, and each chart on its own.
 *
 *     import { App } from 'cdk8s';
 *     import { KudoStack, resolveConfig } from 'kudo-infra';
 *
 *     const app = new App();
 *     new KudoStack(app, 'kudo', { config: resolveConfig({
 *       domain: 'chat.example.org', profile: 'production',
 *       backup: { s3: { enabled: true, repository: 's3:https://s3.example.org/kudo-backups' } },
 *       networkPolicies: { nodeCidrs: ['10.0.0.0/16'] },   // the nodes' addresses: Redis admits them, not every pod
 *     }) });
 *     app.synth();
 *
 * Operators who do not write TypeScript use the `kudo-render` command with
 * YAML configs instead (docs/operations.md, "Your own repository: environments, rendered and synced by Argo CD").
 */
export { buildApp, KudoStack, KudoStackProps } from './app';
export { ConfigError, configSchema, KudoConfig, KudoConfigInput, loadConfig, PRODUCTION_PROFILE, resolveConfig } from './config';

export { ArgoApplicationChart, ArgoApplicationProps, WAVE } from './argocd';
export { BackupChart, BackupProps } from './backup';
export { CloudNativePgChart, CloudNativePgProps } from './cloudnative-pg';
export { CoturnChart, CoturnProps } from './coturn';
export { DatabaseConnection, DatabaseTls } from './database';
export { LiveKitChart, LiveKitProps } from './livekit';
export { MonitoringChart, MonitoringProps } from './monitoring';
export { NamespacesChart, NamespacesProps } from './namespaces';
export { NetworkPoliciesChart, NetworkPoliciesProps } from './network-policies';
export { PodScheduling, TopologySpread, WorkloadScheduling } from './pods';
export { PostgresChart, PostgresProps } from './postgres';
export { RedisChart, RedisProps } from './redis';
export { BootstrapChart, BootstrapProps, SecretGeneratorChart, SecretGeneratorProps } from './secrets';
export { SmokeTestChart, SmokeTestProps } from './smoke';
export { SynapseChart, SynapseProps } from './synapse';
export { SynapseRouterChart, SynapseRouterProps } from './synapse-router';
export { routeFor, WORKER_TYPES, WorkerTypeName } from './synapse-workers';
export { GatewayChart, GatewayProps, LetsEncryptIssuerChart, LetsEncryptIssuerProps } from './tls';
export { WellKnownChart, WellKnownProps } from './well-known';
