/** The /.well-known/matrix delegation. */
import type { Fragments } from './shared';

/** The config keys wellKnown: schema, defaults and documentation. */
export function wellKnownFragment({ z }: Fragments) {
  return {
    wellKnown: z
      .strictObject({
        /** Serve https://<serverName>/.well-known/matrix/{server,client}, delegating to the Matrix host on 443. */
        enabled: z.boolean().default(true),
      })
      .prefault({}),
  };
}
