// Test tooling of the event-store library (`@app/event-store/testing`): fixtures for the apps' specs.
export { FIXED_NOW, ev, removeDir, tempDir } from './fixtures';
