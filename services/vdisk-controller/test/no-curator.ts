// The curator's requests of an ExtentSpace (record a copy, release and compact extent
// groups), for test fakes that never see them: a copy fails loudly, nothing is retired.

export class NoCuratorRequests {
  recordCopy(): Promise<number> {
    return Promise.reject(new Error('not used by this test'));
  }

  retire(): bigint[] {
    return [];
  }

  unretire(): void {}

  evacuate(): bigint[] {
    return [];
  }
}
