/** Where every pod's images come from and where each workload's pods may run. */
import type { Fragments } from './shared';
import { REFINEMENTS } from './shared';

/** The config keys imageRegistry, imagePullSecrets, scheduling: schema, defaults and documentation. */
export function podsFragment({ z, objectName, workloadScheduling }: Fragments) {
  return {
    /**
     * A registry mirror every image is pulled from, e.g. "mirror.example.com" or "harbor.local:8443/hub":
     * it replaces each image's registry host and keeps the path (docker.io/library/postgres becomes
     * mirror.example.com/library/postgres; an image without a registry is Docker Hub's). See charts/pods.ts.
     * @default - each image from its own registry
     */
    imageRegistry: z
      .string()
      .regex(
        /^([a-z0-9-]+\.)*[a-z0-9-]+(:[0-9]{1,5})?(\/[a-z0-9._-]+)*$/,
        'must be a registry host with an optional port and path, such as "mirror.example.com" or "registry.local:5000/hub"',
      )
      .refine(REFINEMENTS.startsWithRegistryHost, {
        message: 'must start with a registry host: a name with a "." or a port, or "localhost" (a bare name would be read as a Docker Hub path)',
      })
      .optional(),
    /** Secrets (type kubernetes.io/dockerconfigjson) every pod pulls its images with; each must exist in every namespace the stack runs pods in. */
    imagePullSecrets: z.array(objectName).default([]),
    /**
     * Where each workload's pods may run: tolerations, nodeAffinity, priorityClassName,
     * topologySpreadConstraints. `all` applies to every workload, together with the
     * workload's own; both are added to what the stack sets itself (node selectors, affinities).
     */
    scheduling: z
      .strictObject({
        all: workloadScheduling,
        /** The StatefulSet's pod, or the CloudNativePG Cluster's instances. */
        postgres: workloadScheduling,
        redis: workloadScheduling,
        /** Synapse's main process. */
        synapse: workloadScheduling,
        /** Every Synapse worker process. */
        synapseWorkers: workloadScheduling,
        synapseRouter: workloadScheduling,
        wellKnown: workloadScheduling,
        livekit: workloadScheduling,
        coturn: workloadScheduling,
        /** The backup and restore CronJobs and the backup volume check. */
        backup: workloadScheduling,
        /** The secret generator, the admin bootstrap and the smoke test. */
        tools: workloadScheduling,
      })
      .prefault({}),
  };
}
