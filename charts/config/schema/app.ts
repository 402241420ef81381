/** The Kudo application that uses the stack. */
import type { Fragments } from './shared';

/** The config keys app: schema, defaults and documentation. */
export function appFragment({ z }: Fragments) {
  return {
    app: z
      .strictObject({
        /**
         * The app runs outside the cluster (a hosted deployment): kudo-app's MATRIX_ADMIN_URL is the public
         * https://<matrix host>, served by the allow-listed admin Ingress (synapse.adminApi.expose).
         */
        outsideCluster: z.boolean().default(false),
      })
      .prefault({}),
  };
}
