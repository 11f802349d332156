//! The route templates of the OpenAPI document (`/api/v1/tasks/{id}`), read
//! once at start: the request-scope middleware names spans, labels metrics
//! and fills `Allow` with them. A leaf: it imports no sibling.

/// The route templates of the document (`/api/v1/tasks/{id}`), to name
/// spans and label metrics without one series per id.
pub struct RouteTemplates {
    templates: Vec<(String, Vec<Option<String>>)>,
    methods: std::collections::HashMap<String, String>,
}

impl RouteTemplates {
    /// Reads the paths of an OpenAPI document.
    pub fn from_spec(spec: &str) -> Self {
        let doc = serde_json::from_str::<serde_json::Value>(spec).unwrap_or_default();
        let operations = doc
            .get("paths")
            .and_then(|p| p.as_object())
            .cloned()
            .unwrap_or_default();
        let paths: Vec<String> = operations.keys().cloned().collect();
        let methods = operations
            .iter()
            .map(|(path, item)| {
                let mut verbs: Vec<String> = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if verbs.iter().any(|v| v == "GET") {
                    verbs.push("HEAD".to_owned());
                }
                (path.clone(), verbs.join(", "))
            })
            .collect();
        let templates = paths
            .into_iter()
            .map(|path| {
                let segments = path
                    .split('/')
                    .map(|seg| {
                        (!(seg.starts_with('{') && seg.ends_with('}'))).then(|| seg.to_owned())
                    })
                    .collect();
                (path, segments)
            })
            .collect();
        Self { templates, methods }
    }

    /// The `Allow` value of a route template.
    pub fn allowed_methods(&self, template: &str) -> Option<String> {
        self.methods.get(template).cloned()
    }

    /// The template matching `path`; a fixed label for anything else.
    pub fn route(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        for (template, pattern) in &self.templates {
            if pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
            {
                return template.clone();
            }
        }
        match path {
            "/openapi.json" | "/openapi.yaml" => path.to_owned(),
            p if p == "/docs" || p.starts_with("/docs/") => "/docs".to_owned(),
            _ => "unmatched".to_owned(),
        }
    }
}
