//! Work spread over the cores, in order.

/// `f` of each chunk of `items`, one chunk per core, the results in the
/// items' order; on this thread alone when there is one core or fewer than
/// `min` items (a thread costs more than it saves on small inputs).
pub fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 || items.len() < min.max(2) {
        return vec![f(items)];
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(cores))
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a chunk's work does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_items_order() {
        let items: Vec<u32> = (0..1000).collect();
        let sums = super::map_chunks(&items, 10, |part| part.to_vec());
        assert_eq!(sums.concat(), items);
        assert_eq!(super::map_chunks(&items[..3], 10, <[u32]>::len), vec![3]);
    }
}
