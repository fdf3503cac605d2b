// The io-director's routing logic.
export { Director, type DirectorDeps } from './director';
export { ioDirectorActor, directorSettings, type DirectorSettings } from './actor';
