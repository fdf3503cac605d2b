// The configuration service's client.
export { ConfigClient } from './client';
