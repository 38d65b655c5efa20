// The same runner as the snippet's: bundles test/unit/*.test.ts for Node and runs them.
await import('../../js-snippet/test/run-unit.mjs');
