// Two projects: unit tests beside the code (pure logic, fakes allowed) and the
// integration/fault tests under test/ that start real nats-server processes.
// Tests import workspace packages from their TypeScript sources, so a unit test
// never depends on a stale build; child processes started by integration tests
// run the built JavaScript (npm test builds first).
const fs = require('node:fs');
const path = require('node:path');

const root = __dirname;
const workspaceDirs = ['proto', 'cli']
  .concat(...['libs', 'services'].map((d) => fs.readdirSync(path.join(root, d)).map((n) => `${d}/${n}`)))
  .filter((d) => fs.existsSync(path.join(root, d, 'package.json')));

const moduleNameMapper = {};
for (const dir of workspaceDirs) {
  const name = require(path.join(root, dir, 'package.json')).name;
  moduleNameMapper[`^${name}$`] = `<rootDir>/${dir}/src/index.ts`;
  moduleNameMapper[`^${name}/testing$`] = `<rootDir>/${dir}/src/testing/index.ts`;
}

const common = {
  rootDir: root,
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  moduleNameMapper,
  moduleFileExtensions: ['ts', 'js', 'json'],
};

module.exports = {
  // A global option (jest ignores it inside a project). Integration and fault tests
  // bound their own waits; this is the backstop for one test.
  testTimeout: 120000,
  // The backstop for a handle a failed test left open (a bus connection retrying a
  // server that is gone): jest reports and exits instead of waiting for it forever.
  // Child processes a test file leaves are killed by test/harness/after-file.ts.
  forceExit: true,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{libs,services,proto,cli}/*/test/**/*.test.ts', '<rootDir>/proto/test/**/*.test.ts', '<rootDir>/cli/test/**/*.test.ts', '<rootDir>/test/fuzz/**/*.test.ts'],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/{integration,faults,e2e}/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/harness/after-file.ts'],
    },
  ],
};
