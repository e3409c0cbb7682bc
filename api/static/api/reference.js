// Starts Swagger UI on /api/docs/ (api/reference.py): a file, not an inline script, for the CSP.
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    domNode: root,
    deepLinking: true,
    supportedSubmitMethods: ["get"], // the session's POSTs would need the HttpOnly CSRF cookie
    validatorUrl: null, // never send the schema to swagger.io's validator
  });
});
