/** The service version reported by /readyz and the OpenAPI document. */
export const VERSION = "0.1.0";
