// The trace id of an event's message (its W3C `traceparent` header), which `strata
// --json events` and the console give with each event recorded inside a trace.
import { traceIdOf } from '../src/ownership';

describe('traceIdOf', () => {
  it("gives the trace id of a well-formed traceparent", () => {
    expect(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    // Not sampled: still the trace the event was recorded in.
    expect(traceIdOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('gives nothing for a missing, malformed or all-zero header', () => {
    for (const header of [undefined, '', 'garbage', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', '00-00000000000000000000000000000000-00f067aa0ba902b7-01']) {
      expect({ header, id: traceIdOf(header) }).toEqual({ header, id: undefined });
    }
  });
});
