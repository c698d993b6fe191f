//! Planning the graph of one entry component: the entry plus every colocated
//! component it reaches through its imports, in instantiation order, with each
//! import routed. One instance of each member serves all of its importers in
//! the graph.

use super::LinkError;
use super::router::{Route, route};
use crate::app::App;
use crate::placement::Placement;
use std::collections::BTreeMap;

/// One routed import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    /// The importing component.
    pub importer: String,
    /// The import's exact name.
    pub import: String,
    /// Where it goes.
    pub route: Route,
}

/// The colocated graph reachable from `root`.
#[derive(Debug, Clone)]
pub struct GraphPlan {
    /// The entry component whose exports the graph exports.
    pub root: String,
    /// Members in instantiation order: every exporter before its importers.
    pub members: Vec<String>,
    /// Every import of every member, routed.
    pub wires: Vec<Wire>,
}

impl GraphPlan {
    /// The wires of one member.
    pub fn wires_of<'a>(&'a self, importer: &'a str) -> impl Iterator<Item = &'a Wire> + 'a {
        self.wires.iter().filter(move |w| w.importer == importer)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    InProgress,
    Done,
}

/// Plans the graph of `root` under `placement`, reporting every link problem
/// found on the way.
pub fn plan_graph(
    app: &App,
    placement: &Placement,
    root: &str,
) -> Result<GraphPlan, Vec<LinkError>> {
    let mut planner = Planner {
        app,
        placement,
        state: BTreeMap::new(),
        stack: Vec::new(),
        members: Vec::new(),
        wires: Vec::new(),
        errors: Vec::new(),
    };
    planner.visit(root);
    if planner.errors.is_empty() {
        Ok(GraphPlan {
            root: root.to_string(),
            members: planner.members,
            wires: planner.wires,
        })
    } else {
        Err(planner.errors)
    }
}

struct Planner<'a> {
    app: &'a App,
    placement: &'a Placement,
    state: BTreeMap<String, Visit>,
    stack: Vec<String>,
    members: Vec<String>,
    wires: Vec<Wire>,
    errors: Vec<LinkError>,
}

impl Planner<'_> {
    fn visit(&mut self, label: &str) {
        match self.state.get(label) {
            Some(Visit::Done) => return,
            Some(Visit::InProgress) => {
                let start = self.stack.iter().position(|l| l == label).unwrap_or(0);
                let mut cycle = self.stack[start..].to_vec();
                cycle.push(label.to_string());
                self.errors.push(LinkError::Cycle { cycle });
                return;
            }
            None => {}
        }
        let Some(component) = self.app.component(label) else {
            self.errors
                .push(LinkError::UnknownComponent(label.to_string()));
            return;
        };
        self.state.insert(label.to_string(), Visit::InProgress);
        self.stack.push(label.to_string());
        for import in &component.world.imports {
            match route(self.app, self.placement, label, &import.name) {
                Ok(route) => {
                    if let Route::Colocated { exporter, .. } = &route {
                        let exporter = exporter.clone();
                        self.visit(&exporter);
                    }
                    self.wires.push(Wire {
                        importer: label.to_string(),
                        import: import.name.clone(),
                        route,
                    });
                }
                Err(e) => self.errors.push(e),
            }
        }
        self.stack.pop();
        self.state.insert(label.to_string(), Visit::Done);
        self.members.push(label.to_string());
    }
}
