export function createDevConfig() {}
export function createMinimalConfig() {}
export function createProductionConfig() {}
