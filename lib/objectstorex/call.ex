defmodule ObjectStoreX.Call do
  @moduledoc false
  # The caller's side of the `{ref, result}` protocol, and the one place where a native error
  # `{reason, message, retryable}` becomes an `%ObjectStoreX.Error{}`. Every NIF that does I/O
  # returns a task handle at once; its result arrives later as
  # `{ref, {:ok, value} | {:error, {reason, message, retryable}}}`.

  alias ObjectStoreX.{Error, Native}

  @typedoc "What the `ObjectStoreX.Args` builders return: the NIF's arguments and how to wait."
  @type args ::
          {:ok, [term()],
           %{
             :timeout => timeout(),
             optional(:on_progress) => (map() -> any()) | nil,
             optional(:on_complete) => (map() -> any()) | nil,
             optional(:final) => (term() -> non_neg_integer())
           }}
          | {:error, Error.t()}

  @doc false
  # Calls `nif` with a fresh reference and `args`, and waits as `call` says. An error from
  # the builder is passed through, so that a facade function is one pipeline.
  @spec run(args(), function()) :: {:ok, term()} | {:error, Error.t()}
  def run({:ok, args, call}, nif) do
    with {:ok, value} <- await(&apply(nif, [&1 | args]), call.timeout, call[:on_progress]) do
      # The final report of a natively driven transfer, whose last bytes may not have been
      # reported: `call.final` says how many bytes the result stands for.
      if call[:on_progress] && call[:final] do
        bytes = call.final.(value)
        call.on_progress.(%{bytes: bytes, total: bytes})
      end

      {:ok, value}
    end
  end

  def run({:error, %Error{}} = error, _nif), do: error

  @doc false
  # `on_progress`, when given, is called with `%{bytes: done, total: total | nil}` for each
  # intermediate `{ref, {:progress, done, total}}` that a reporting task sends.
  @spec await((reference() -> term()), timeout(), (map() -> any()) | nil) ::
          {:ok, term()} | {:error, Error.t()}
  def await(start, timeout, on_progress \\ nil) do
    ref = make_ref()

    result =
      case start_task(start, ref) do
        {:ok, handle} -> await_reply(ref, handle, deadline(timeout), on_progress)
        error -> error
      end

    with {:error, native} <- result, do: {:error, error(native)}
  end

  @doc false
  # A NIF that answers at once (`{:ok, value} | {:error, native}`), with the same errors.
  @spec now((() -> {:ok, term()} | {:error, term()})) :: {:ok, term()} | {:error, Error.t()}
  def now(nif) do
    with {:error, native} <- nif.(), do: {:error, error(native)}
  rescue
    e in ArgumentError -> {:error, error(badarg(e))}
  end

  @doc false
  @spec error({atom(), String.t(), boolean()}) :: Error.t()
  def error({reason, message, retryable}),
    do: %Error{reason: reason, message: message, retryable: retryable}

  defp start_task(start, ref) do
    {:ok, start.(ref)}
  rescue
    e in ArgumentError -> {:error, badarg(e)}
  end

  @doc false
  # Arguments, the store included (`Args.store/1` asks the native side), are validated before
  # a NIF is called, so a badarg means that validation missed something: say so, with what the
  # VM said, rather than guess which argument it was.
  @spec badarg(ArgumentError.t()) :: {:invalid_argument, String.t(), false}
  def badarg(%ArgumentError{} = e) do
    {:invalid_argument,
     "the native library refused an argument that passed validation: #{Exception.message(e)}",
     false}
  end

  defp await_reply(ref, handle, deadline, on_progress) do
    receive do
      {^ref, {:progress, done, total}} ->
        if on_progress, do: report(on_progress, %{bytes: done, total: total}, ref, handle)
        await_reply(ref, handle, deadline, on_progress)

      {^ref, result} ->
        result
    after
      remaining(deadline) ->
        Native.task_cancel(handle)
        timed_out(ref, elem(deadline, 1))
    end
  end

  # A callback that raises, throws or exits must not leave the task running on nor its messages
  # in the mailbox: the task is cancelled and its terminal reply awaited before re-raising.
  defp report(on_progress, progress, ref, handle) do
    on_progress.(progress)
  catch
    kind, reason ->
      Native.task_cancel(handle)
      drain(ref)
      :erlang.raise(kind, reason, __STACKTRACE__)
  end

  # The task always answers, with its result or with :cancelled once it is dropped, so this
  # cannot hang and leaves no stray message behind.
  defp drain(ref) do
    receive do
      {^ref, {:progress, _, _}} -> drain(ref)
      {^ref, result} -> result
    end
  end

  defp timed_out(ref, timeout) do
    case drain(ref) do
      {:error, {:cancelled, _, _}} ->
        {:error, {:timeout, "the operation did not complete within #{timeout} ms", true}}

      result ->
        result
    end
  end

  defp deadline(:infinity), do: {:infinity, :infinity}
  defp deadline(timeout), do: {System.monotonic_time(:millisecond) + timeout, timeout}

  defp remaining({:infinity, _}), do: :infinity
  defp remaining({at, _}), do: max(at - System.monotonic_time(:millisecond), 0)
end
