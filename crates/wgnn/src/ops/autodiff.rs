//! Reverse-mode autodiff: walk the nodes from the output back to the inputs, asking each op's
//! backward rule for the gradients of its inputs, summing where a node feeds several others.

use crate::error::{Error, Result};
use crate::graph::{BackwardCtx, Graph, NodeId, NodeKind};

impl Graph {
    /// Adds the nodes computing d(sum(output * seed))/d(x) for each x in `wrt` and returns them
    /// in the same order. `seed` has the output's shape (dLoss/dOutput).
    pub fn backward(
        &mut self,
        output: NodeId,
        seed: NodeId,
        wrt: &[NodeId],
    ) -> Result<Vec<NodeId>> {
        if self.shape(seed) != self.shape(output) {
            return Err(Error::shape(
                "backward",
                format!(
                    "seed gradient {} does not match output {}",
                    self.shape(seed),
                    self.shape(output)
                ),
            ));
        }
        let count = output.0 + 1;
        // Nodes that depend on some `wrt` node: only they need gradients.
        let mut depends = vec![false; count];
        for &w in wrt {
            if w.0 < count {
                depends[w.0] = true;
            }
        }
        for i in 0..count {
            if !depends[i] && self.nodes()[i].inputs.iter().any(|&j| depends[j.0]) {
                depends[i] = true;
            }
        }
        // Nodes that the output depends on.
        let mut feeds_output = vec![false; count];
        feeds_output[output.0] = true;
        for i in (0..count).rev() {
            if feeds_output[i] {
                for &j in &self.nodes()[i].inputs {
                    feeds_output[j.0] = true;
                }
            }
        }
        for &w in wrt {
            if w.0 >= count || !feeds_output[w.0] {
                return Err(Error::Invalid(format!(
                    "backward: `{}` ({w}) does not influence the output `{}` ({output})",
                    self.nodes()[w.0].name,
                    self.nodes()[output.0].name
                )));
            }
        }

        let was_building = self.set_building_gradients(true);
        let mut grads: Vec<Option<NodeId>> = vec![None; count];
        grads[output.0] = Some(seed);
        let result = (|| {
            for i in (0..count).rev() {
                let Some(grad) = grads[i] else { continue };
                if !depends[i] || !feeds_output[i] {
                    continue;
                }
                let NodeKind::Op(op) = self.nodes()[i].kind.clone() else {
                    continue;
                };
                let inputs = self.nodes()[i].inputs.clone();
                let needs_grad: Vec<bool> = inputs.iter().map(|j| depends[j.0]).collect();
                if !needs_grad.iter().any(|&b| b) {
                    continue;
                }
                let ctx = BackwardCtx {
                    inputs: &inputs,
                    output: NodeId(i),
                    grad,
                    needs_grad: &needs_grad,
                };
                let input_grads = op.backward(self, &ctx)?;
                for ((&input, input_grad), needed) in
                    inputs.iter().zip(input_grads).zip(&needs_grad)
                {
                    let (Some(g), true) = (input_grad, *needed) else {
                        continue;
                    };
                    if self.shape(g) != self.shape(input) {
                        return Err(Error::shape(
                            op.name(),
                            format!("backward rule gave a gradient of shape {} for an input of shape {}", self.shape(g), self.shape(input)),
                        ));
                    }
                    grads[input.0] = Some(match grads[input.0] {
                        None => g,
                        Some(existing) => self.add(existing, g)?,
                    });
                }
            }
            wrt.iter()
                .map(|w| {
                    grads[w.0].ok_or_else(|| {
                        Error::Invalid(format!(
                            "backward: no gradient flows to `{}` ({w})",
                            self.nodes()[w.0].name
                        ))
                    })
                })
                .collect()
        })();
        self.set_building_gradients(was_building);
        result
    }

    /// Gradients of a one-element `loss` with respect to each node of `wrt`.
    pub fn gradients(&mut self, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
        if self.shape(loss).numel() != 1 {
            return Err(Error::shape(
                "gradients",
                format!(
                    "the loss must have one element, not shape {}",
                    self.shape(loss)
                ),
            ));
        }
        let shape = self.shape(loss).clone();
        let was_building = self.set_building_gradients(true);
        let seed = self.fill(shape, 1.0);
        self.set_building_gradients(was_building);
        self.backward(loss, seed?, wrt)
    }
}
