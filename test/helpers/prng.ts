// The seeded PRNG lives with the fault tests (chaos/), which print their seed too.
export { prng } from '../../chaos/prng.js';
