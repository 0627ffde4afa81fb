//! Each parameter's optimizer state: one table of named buffers, PyTorch's
//! `optimizer.state[p]` names in a fixed order.

/// A state buffer; its position in [`Buf::ALL`] is its place in every parameter's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    MomentumBuffer,
    Sum,
    SquareAvg,
    AccDelta,
    GradAvg,
    ExpAvg,
    ExpAvgSq,
    MaxExpAvgSq,
    HessianDiagonal,
}

/// How many buffers the table has.
pub const BUFFERS: usize = 9;

impl Buf {
    /// Every buffer, in table order (the order checkpoints list them in).
    pub const ALL: [Buf; BUFFERS] = [
        Buf::MomentumBuffer,
        Buf::Sum,
        Buf::SquareAvg,
        Buf::AccDelta,
        Buf::GradAvg,
        Buf::ExpAvg,
        Buf::ExpAvgSq,
        Buf::MaxExpAvgSq,
        Buf::HessianDiagonal,
    ];

    /// PyTorch's name for it (sdlm, which PyTorch does not have, names its own).
    pub fn name(self) -> &'static str {
        match self {
            Buf::MomentumBuffer => "momentum_buffer",
            Buf::Sum => "sum",
            Buf::SquareAvg => "square_avg",
            Buf::AccDelta => "acc_delta",
            Buf::GradAvg => "grad_avg",
            Buf::ExpAvg => "exp_avg",
            Buf::ExpAvgSq => "exp_avg_sq",
            Buf::MaxExpAvgSq => "max_exp_avg_sq",
            Buf::HessianDiagonal => "hessian_diagonal",
        }
    }

    fn named(name: &str) -> Option<Buf> {
        Buf::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One parameter's state: a buffer is `None` until the rule that uses it first runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamState {
    table: [Option<Vec<f32>>; BUFFERS],
}

impl ParamState {
    /// Buffer `b`, if it exists.
    pub fn get(&self, b: Buf) -> Option<&[f32]> {
        self.table[b as usize].as_deref()
    }

    /// Makes buffer `b` of `n` values, all `init`, unless it exists; returns whether it is new.
    pub fn need(&mut self, b: Buf, n: usize, init: f32) -> bool {
        let slot = &mut self.table[b as usize];
        let new = slot.is_none();
        let buffer = slot.get_or_insert_with(|| vec![init; n]);
        debug_assert_eq!(buffer.len(), n);
        new
    }

    /// The buffers that exist, by name, in table order.
    pub fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        (Buf::ALL.iter().zip(&self.table))
            .filter_map(|(b, values)| Some((b.name(), values.as_deref()?)))
            .collect()
    }

    pub fn buffer(&self, name: &str) -> Option<&[f32]> {
        self.get(Buf::named(name)?)
    }

    /// Restores one buffer by name (from a checkpoint).
    pub fn set_buffer(&mut self, name: &str, values: Vec<f32>) -> Result<(), String> {
        let b = Buf::named(name).ok_or_else(|| format!("unknown optimizer state {name}"))?;
        self.table[b as usize] = Some(values);
        Ok(())
    }

    /// Every buffer as a mutable slice (`None` where it does not exist), in table order.
    pub fn slices_mut(&mut self) -> [Option<&mut [f32]>; BUFFERS] {
        let mut slots = self.table.iter_mut();
        std::array::from_fn(|_| slots.next().and_then(|b| b.as_deref_mut()))
    }
}
