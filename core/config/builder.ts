export class XronoxConfigBuilder {}
