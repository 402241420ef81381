/** The Argo CD Application that syncs the rendered folder. */
import type { z as Z } from 'zod';
import type { Fragments } from './shared';

/** The config keys argocd: schema, defaults and documentation. */
export function argocdFragment({ z, dnsLabel }: Fragments) {
  return {
    argocd: z
      .strictObject({
        /** Render an Argo CD Application (90-argocd.k8s.yaml) that syncs the rendered folder from Git. */
        enabled: z.boolean().default(false),
        namespace: dnsLabel.default('argocd'),
        /** The Application's name: environments synced by one Argo CD need one each (e.g. kudo-staging). */
        applicationName: dnsLabel.default('kudo'),
        project: z.string().default('default'),
        /** The Git repository that holds the rendered output; required when enabled. */
        repoURL: z
          .string()
          .regex(/^(https:\/\/|ssh:\/\/|git@)\S+$/, 'must be a Git URL such as "https://git.example.com/kudo/infra.git"')
          .optional(),
        targetRevision: z.string().default('main'),
        path: z.string().default('dist'),
        prune: z.boolean().default(true),
      })
      .prefault({}),
  };
}

/** The Application needs the repository it syncs from. */
export function argocdProblems(c: { readonly argocd: Z.output<ReturnType<typeof argocdFragment>['argocd']> }): string[] {
  const problems: string[] = [];
  if (c.argocd.enabled && c.argocd.repoURL === undefined) problems.push('argocd.repoURL is required when argocd.enabled is true');
  return problems;
}
