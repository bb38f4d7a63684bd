/**
 * The module a Workers bundle starts from (infra/edge/wrangler.jsonc `main`): the Worker's
 * handlers as its default export, which is the shape Workers require of a module Worker.
 */
import { worker } from './worker.js';

// eslint-disable-next-line no-restricted-syntax -- Workers take a module Worker's handlers from its default export
export default worker;
