// Orderhub API reference: Swagger UI on this hub's own /openapi.json, with "try it out".
// Kept out of the page so the page's Content-Security-Policy can forbid inline scripts.
"use strict";

window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true, // every operation has an anchor (#/tag/operationId) that scrolls to it
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    filter: true,
    persistAuthorization: false, // an API key is not kept in the browser's storage
    validatorUrl: null, // Swagger's online validator would send the document off this machine
  });
});
