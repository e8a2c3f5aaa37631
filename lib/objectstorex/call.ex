defmodule ObjectStoreX.Call do
  @moduledoc false
  # The caller's side of the `{ref, result}` protocol. Every NIF that does I/O returns a task
  # handle at once; its result arrives later as
  # `{ref, {:ok, value} | {:error, {reason, message, retryable}}}`.

  @doc false
  def await(start, timeout) do
    ref = make_ref()

    case start_task(start, ref) do
      {:ok, handle} -> await_reply(ref, handle, timeout)
      error -> error
    end
  end

  # Arguments are validated before a NIF is called, so a badarg can only mean a resource of
  # the wrong kind, such as a hand-built %ObjectStoreX.Store{}.
  defp start_task(start, ref) do
    {:ok, start.(ref)}
  rescue
    ArgumentError ->
      {:error,
       {:invalid_argument, "the store (or upload) argument is not a live ObjectStoreX resource",
        false}}
  end

  defp await_reply(ref, handle, timeout) do
    receive do
      {^ref, result} -> result
    after
      timeout ->
        ObjectStoreX.Native.task_cancel(handle)
        # The task always answers, with its result or with :cancelled once it is dropped, so
        # this cannot hang and leaves no stray message behind.
        receive do
          {^ref, {:error, {:cancelled, _, _}}} ->
            {:error, {:timeout, "the operation did not complete within #{timeout} ms", true}}

          {^ref, result} ->
            result
        end
    end
  end
end
