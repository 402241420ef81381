/**
 * docs/image-contract.yaml, read once for both test tiers: the unit test that holds every rendered container to it
 * (test/image-contract.test.ts) and the e2e harness that runs containers as their images would (test/e2e/image.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';

/** What the contract says of one image, as read from its build file at `tag`. */
export interface ImageFacts {
  readonly tag: string;
  readonly source: string;
  readonly entrypoint: string[];
  readonly cmd: string[];
  readonly path: string;
  /** The uid the image runs as when the pod names none. */
  readonly user: number;
  /** Absolute paths of the image's own programs, each with where the fact comes from. */
  readonly programs: Record<string, string>;
  /** A key of `bases`: the standard programs of the image's base ("none" for scratch). */
  readonly base_programs: string;
  readonly file_capabilities?: Record<string, string[]>;
}

export interface ImageContract {
  readonly images: Record<string, ImageFacts>;
  readonly bases: Record<string, { readonly source: string; readonly programs: string[] }>;
}

export const IMAGE_CONTRACT_FILE = path.join(__dirname, '..', 'docs', 'image-contract.yaml');

export function imageContract(): ImageContract {
  return yaml.load(fs.readFileSync(IMAGE_CONTRACT_FILE, 'utf8')) as ImageContract;
}

/** The repository of an image reference (no tag or digest). */
export function imageRepository(ref: string): string {
  return ref.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/:[^:/]+$/, '');
}
