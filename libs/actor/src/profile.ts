// An opt-in CPU profile of an actor process, for finding where the time goes:
// STRATA_CPU_PROFILE_DIR=/tmp/prof makes the process profile itself from start-up
// and write `<name>-<instance>-<pid>.cpuprofile` there when it stops (open it in
// Chrome DevTools or any V8 profile viewer). Node refuses --cpu-prof in
// NODE_OPTIONS, so supervised children could not be profiled otherwise.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuProfile {
  /** Stops profiling and writes the profile; resolves with its path. */
  stop(): Promise<string>;
}

function post<T>(session: Session, method: string): Promise<T> {
  return new Promise((resolve, reject) => session.post(method, (err, result) => (err === null ? resolve(result as T) : reject(err))));
}

/** Starts profiling when `dir` is set; undefined otherwise. */
export async function startCpuProfile(dir: string | undefined, name: string): Promise<CpuProfile | undefined> {
  if (dir === undefined || dir === '') return undefined;
  const session = new Session();
  session.connect();
  await post(session, 'Profiler.enable');
  await post(session, 'Profiler.start');
  return {
    stop: async () => {
      const { profile } = await post<{ profile: unknown }>(session, 'Profiler.stop');
      session.disconnect();
      const path = join(dir, `${name}-${process.pid}.cpuprofile`);
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
  };
}
